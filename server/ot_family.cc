#include "server/ot_family.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/parallel_for.h"
#include "ot/ot.h"
#include "server/ot_convert.h"
#include "server/status_util.h"

namespace solverd::server {
namespace {

class PreparedOt final : public PreparedJob {
 public:
  PreparedOt(ot::Problem problem, ot::Options options)
      : problem_(std::move(problem)), options_(options) {}

  int64_t MemoryBytes() const override { return ot::EstimateBytes(problem_, options_); }

  // Small problems of one shape batch together (the kernels see one shape).
  std::string BatchKey() const override {
    if (problem_.n * problem_.m > OtFamily::kMaxBatchableEntries) return "";
    return absl::StrCat("ot/", problem_.n, "x", problem_.m);
  }

  JobOutcome Run(const Lane& lane, ProgressSink* sink, const CancelToken* cancel) override {
    ot::Options options = options_;
    options.threads = lane.cpu_threads;
    ot::Result result;
    ::solverd::Status s =
        ot::Solve(lane.device, lane.stream, problem_, options, sink, cancel, &result);
    JobOutcome outcome;
    outcome.status = FromKernel(s);
    const bool stopped = s.code() == ::solverd::StatusCode::kCancelled ||
                         s.code() == ::solverd::StatusCode::kDeadlineExceeded;
    if (s.ok() || stopped) {
      outcome.result.emplace();
      *outcome.result->mutable_ot() = OtResultToProto(result, problem_, lane.device.ToString());
      outcome.iterations = result.iterations;
    }
    return outcome;
  }

 private:
  const ot::Problem problem_;
  const ot::Options options_;
};

}  // namespace

void OtFamily::RunBatch(const Lane& lane, std::vector<BatchMember>& batch) const {
  if (lane.device.is_cuda() || batch.size() < 2 || lane.cpu_threads < 2) {
    Family::RunBatch(lane, batch);
    return;
  }
  Lane single = lane;
  single.cpu_threads = 1;
  ::solverd::ParallelFor(static_cast<int64_t>(batch.size()), lane.cpu_threads,
                         [&](int64_t begin, int64_t end) {
                           for (int64_t k = begin; k < end; ++k) {
                             BatchMember& m = batch[k];
                             *m.outcome = m.job->Run(single, m.sink, m.cancel);
                           }
                         },
                         /*min_items_per_thread=*/1);
}

absl::StatusOr<std::unique_ptr<PreparedJob>> OtFamily::Prepare(
    const v1::JobSpec& spec, const BlobStore& blobs) const {
  auto work = ConvertOtProblem(spec.ot(), blobs, "ot");
  if (!work.ok()) return work.status();
  return std::make_unique<PreparedOt>(std::move(work->problem), work->options);
}

}  // namespace solverd::server
