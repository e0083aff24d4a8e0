#include "server/families/ot/family.h"

#include <chrono>
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "ot/batch.h"
#include "ot/ot.h"
#include "server/families/ot/convert.h"
#include "server/status_util.h"

ABSL_FLAG(int64_t, max_ot_entries, solverd::server::OtFamily::Info().size_limit.default_max,
          "largest ot problem accepted, in cost entries n * m");

namespace solverd::server {
namespace {

bool IsStop(const ::solverd::Status& s) {
  return s.code() == ::solverd::StatusCode::kCancelled ||
         s.code() == ::solverd::StatusCode::kDeadlineExceeded;
}

// Device memory one SolveBatch call may stack (C for every problem): larger
// OtBatch jobs go through it in parts.
constexpr int64_t kMaxStackedEntries = int64_t{1} << 26;

class PreparedOt final : public PreparedJob {
 public:
  PreparedOt(ot::Problem problem, ot::Options options)
      : problem_(std::move(problem)), options_(options) {}

  int64_t MemoryBytes() const override { return ot::EstimateBytes(problem_, options_); }
  int64_t ProblemSize() const override { return problem_.n * problem_.m; }

  // Small problems of one shape batch together (the kernels see one shape).
  std::string BatchKey() const override {
    if (problem_.n * problem_.m > OtFamily::kMaxBatchableEntries) return "";
    return absl::StrCat("ot/", problem_.n, "x", problem_.m);
  }

  JobOutcome Run(const Lane& lane, ProgressSink* sink, const CancelToken* cancel) override {
    ot::BatchItem item = Item(lane, sink, cancel);
    item.status = ot::Solve(lane.device, lane.stream, problem_, item.options, sink, cancel,
                            &item.result);
    return Outcome(item, lane);
  }

  // This job as one problem of an ot::SolveBatch call.
  ot::BatchItem Item(const Lane& lane, ProgressSink* sink, const CancelToken* cancel) const {
    ot::BatchItem item;
    item.problem = &problem_;
    item.options = options_;
    item.options.threads = lane.cpu_threads;
    item.sink = sink;
    item.cancel = cancel;
    return item;
  }

  JobOutcome Outcome(const ot::BatchItem& item, const Lane& lane) const {
    JobOutcome outcome;
    outcome.status = FromKernel(item.status);
    if (item.status.ok() || IsStop(item.status)) {
      outcome.result.emplace();
      *outcome.result->mutable_ot() =
          OtResultToProto(item.result, problem_, lane.device.ToString());
      outcome.iterations = item.result.iterations;
    }
    return outcome;
  }

 private:
  const ot::Problem problem_;
  const ot::Options options_;
};

// The problems of one OtBatch job, solved side by side on a CPU lane's
// threads, or by ot::SolveBatch on a CUDA lane (in parts of at most
// kMaxStackedEntries cost entries). Progress reports how many are done;
// cancelling stops them all, keeping what each had reached.
class PreparedOtBatch final : public PreparedJob {
 public:
  explicit PreparedOtBatch(std::vector<OtWork> work) : work_(std::move(work)) {}

  int64_t ProblemSize() const override {
    int64_t largest = 0;
    for (const OtWork& w : work_) largest = std::max(largest, w.problem.n * w.problem.m);
    return largest;
  }
  int64_t MemoryBytes() const override {
    int64_t bytes = 0;
    for (const OtWork& w : work_) bytes += ot::EstimateBytes(w.problem, w.options);
    return bytes;
  }

  JobOutcome Run(const Lane& lane, ProgressSink* sink, const CancelToken* cancel) override {
    const int64_t count = static_cast<int64_t>(work_.size());
    std::vector<ot::Result> results(count);
    std::vector<::solverd::Status> statuses(count);
    std::mutex mu;  // guards `done` and the sink, which expects one caller at a time
    int64_t done = 0, iterations = 0;
    const auto start = std::chrono::steady_clock::now();
    auto report = [&](int64_t k) {
      std::lock_guard<std::mutex> lock(mu);
      ++done;
      iterations += results[k].iterations;
      if (sink == nullptr) return;
      ::solverd::Progress p;
      p.iteration = done;
      p.fraction = static_cast<double>(done) / count;
      p.elapsed_seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      p.stage = "batch";
      sink->Report(p);
    };
    if (lane.device.is_cuda()) {
      const ::solverd::Status s = SolveStacked(lane, cancel, report, &results, &statuses);
      if (!s.ok()) return JobOutcome{FromKernel(s), std::nullopt, 0};
    } else {
      SolveSideBySide(lane, count, [&](const Lane& single, int64_t k) {
        ot::Options options = work_[k].options;
        options.threads = single.cpu_threads;
        statuses[k] = ot::Solve(single.device, single.stream, work_[k].problem, options,
                                nullptr, cancel, &results[k]);
        report(k);
      });
    }
    JobOutcome outcome;
    outcome.iterations = iterations;
    outcome.result.emplace();
    v1::OtBatchResult* out = outcome.result->mutable_ot_batch();
    for (int64_t k = 0; k < count; ++k) {
      *out->add_results() = OtResultToProto(results[k], work_[k].problem, lane.device.ToString());
      if (!statuses[k].ok() && outcome.status.ok()) {
        outcome.status = FromKernel(statuses[k]);
        if (!IsStop(statuses[k])) {
          outcome.status = absl::Status(outcome.status.code(),
              absl::StrCat("ot_batch.problems[", k, "]: ", outcome.status.message()));
        }
      }
    }
    return outcome;
  }

 private:
  // The problems through ot::SolveBatch, in parts; `report(k)` after each
  // problem of a part. Not OK only when the device failed.
  ::solverd::Status SolveStacked(const Lane& lane, const CancelToken* cancel,
                                 const std::function<void(int64_t)>& report,
                                 std::vector<ot::Result>* results,
                                 std::vector<::solverd::Status>* statuses) const {
    const int64_t count = static_cast<int64_t>(work_.size());
    const int64_t entries = work_[0].problem.n * work_[0].problem.m;
    const int64_t part = std::max<int64_t>(1, kMaxStackedEntries / entries);
    for (int64_t first = 0; first < count; first += part) {
      const int64_t end = std::min(count, first + part);
      std::vector<ot::BatchItem> items(end - first);
      for (int64_t k = first; k < end; ++k) {
        items[k - first].problem = &work_[k].problem;
        items[k - first].options = work_[k].options;
        items[k - first].cancel = cancel;
      }
      SOLVERD_RETURN_IF_ERROR(ot::SolveBatch(lane.device, lane.stream, &items));
      for (int64_t k = first; k < end; ++k) {
        (*results)[k] = std::move(items[k - first].result);
        (*statuses)[k] = items[k - first].status;
        report(k);
      }
    }
    return ::solverd::Status::Ok();
  }

  std::vector<OtWork> work_;
};

absl::StatusOr<std::unique_ptr<PreparedJob>> PrepareBatch(const v1::OtBatch& batch,
                                                          const BlobStore& blobs) {
  if (batch.problems().empty()) {
    return absl::InvalidArgumentError("ot_batch.problems: is empty");
  }
  if (batch.problems_size() > OtFamily::kMaxProblemsPerJob) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ot_batch.problems: ", batch.problems_size(), " problems, at most ",
        OtFamily::kMaxProblemsPerJob));
  }
  std::vector<OtWork> work;
  for (int k = 0; k < batch.problems_size(); ++k) {
    const std::string field = absl::StrCat("ot_batch.problems[", k, "]");
    auto one = ConvertOtProblem(batch.problems(k), blobs, field);
    if (!one.ok()) return one.status();
    if (!work.empty() && (one->problem.n != work[0].problem.n ||
                          one->problem.m != work[0].problem.m)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": shape ", one->problem.n, "x", one->problem.m, " differs from problems[0], ",
          work[0].problem.n, "x", work[0].problem.m, "; a batch holds one shape"));
    }
    work.push_back(*std::move(one));
  }
  return std::make_unique<PreparedOtBatch>(std::move(work));
}

}  // namespace

const FamilyInfo& OtFamily::Info() {
  static const FamilyInfo* const kInfo = new FamilyInfo{
      "ot", {v1::JobSpec::kOt, v1::JobSpec::kOtBatch},
      {"max_ot_entries", "cost entries", int64_t{1} << 28}};
  return *kInfo;
}

absl::StatusOr<std::unique_ptr<Family>> OtFamily::Create(const FamilyServices&) {
  return std::make_unique<OtFamily>();
}

void OtFamily::RunBatch(const Lane& lane, std::vector<BatchMember>& batch) const {
  std::vector<ot::BatchItem> items;
  std::vector<const PreparedOt*> jobs;
  for (const BatchMember& member : batch) {
    jobs.push_back(dynamic_cast<const PreparedOt*>(member.job));
    if (jobs.back() == nullptr) break;
    items.push_back(jobs.back()->Item(lane, member.sink, member.cancel));
  }
  if (!lane.device.is_cuda() || items.size() < batch.size()) {
    RunSideBySide(lane, batch);
    return;
  }
  const ::solverd::Status s = ot::SolveBatch(lane.device, lane.stream, &items);
  for (size_t k = 0; k < batch.size(); ++k) {
    *batch[k].outcome = s.ok() ? jobs[k]->Outcome(items[k], lane)
                               : JobOutcome{FromKernel(s), std::nullopt, 0};
  }
}

absl::StatusOr<std::unique_ptr<PreparedJob>> OtFamily::Prepare(
    const v1::JobSpec& spec, const PrepareContext& context) const {
  if (spec.has_ot_batch()) return PrepareBatch(spec.ot_batch(), context.blobs);
  auto work = ConvertOtProblem(spec.ot(), context.blobs, "ot");
  if (!work.ok()) return work.status();
  return std::make_unique<PreparedOt>(std::move(work->problem), work->options);
}

}  // namespace solverd::server
