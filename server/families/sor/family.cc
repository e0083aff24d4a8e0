#include "server/families/sor/family.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "server/families/sor/convert.h"
#include "server/status_util.h"
#include "server/families/sor/tuner_registry.h"
#include "server/tensor_convert.h"
#include "sor/sequence.h"

ABSL_FLAG(int64_t, max_sor_nonzeros, solverd::server::SorFamily::Info().size_limit.default_max,
          "largest sor matrix accepted, in nonzeros");

namespace solverd::server {
namespace {

namespace sor = ::solverd::sor;

// Passes the progress of a solve (or of a batch of `count` solves) on as
// progress of the whole sequence.
class SequenceSink final : public ::solverd::ProgressSink {
 public:
  SequenceSink(::solverd::ProgressSink* out, int64_t done, int64_t count, int64_t total,
               int system)
      : out_(out), done_(done), count_(count), total_(total), system_(system) {}
  void Report(const ::solverd::Progress& p) override {
    ::solverd::Progress q = p;
    q.fraction = (done_ + count_ * p.fraction) / total_;
    q.extras.emplace_back("system", system_);
    out_->Report(q);
  }

 private:
  ::solverd::ProgressSink* const out_;
  const int64_t done_, count_, total_;
  const int system_;
};

// One right-hand side of one system: the unit the sequence solves, in order.
struct SolveItem {
  int system;
  int rhs;
};

void Record(const SolveItem& item, const sor::TunedSolve& solve, const SorWork& work,
            v1::SorSequenceResult* out, JobOutcome* outcome) {
  v1::SorSolveResult* r = out->add_solves();
  r->set_system(item.system);
  r->set_rhs(item.rhs);
  r->set_omega(solve.omega);
  r->set_iterations(solve.result.iterations);
  r->set_relative_residual(solve.result.relative_residual);
  r->set_converged(solve.result.converged);
  r->set_seconds(solve.result.seconds);
  r->set_work_iterations(solve.work_iterations);
  const std::vector<double>& x = solve.result.x;
  if (!work.omit_solutions) {
    if (work.raw_solutions) {
      r->set_x_raw(RawBytes(x));
    } else {
      r->mutable_x()->Add(x.begin(), x.end());
    }
  }
  out->set_total_iterations(out->total_iterations() + solve.result.iterations);
  outcome->iterations += solve.work_iterations;
}

// The sequence-level progress event after each solve.
void ReportSolve(::solverd::ProgressSink* sink, const sor::TunedSolve& solve,
                 const v1::SorSequenceResult& out, int64_t done, int64_t total, double elapsed) {
  ::solverd::Progress p;
  p.iteration = done;
  p.residual = solve.result.relative_residual;
  p.objective = static_cast<double>(out.total_iterations());
  p.fraction = static_cast<double>(done) / total;
  p.elapsed_seconds = elapsed;
  p.stage = "sequence";
  p.extras = {{"omega", solve.omega}, {"iterations", static_cast<double>(solve.result.iterations)}};
  sink->Report(p);
}

class PreparedSor final : public PreparedJob {
 public:
  PreparedSor(SorWork work, std::string tuner_name, std::optional<TunerRegistry::Entry> tuner,
              const TunerRegistry* registry)
      : work_(std::move(work)), tuner_name_(std::move(tuner_name)), tuner_(std::move(tuner)),
        registry_(registry) {}

  int64_t MemoryBytes() const override {
    int64_t solves = 0;
    for (const SorSystem& s : work_.systems) solves += static_cast<int64_t>(s.rhs.size());
    const int batch = Batchable() ? static_cast<int>(std::min<int64_t>(solves, sor::kMaxBatch)) : 1;
    int64_t bytes = 0;
    for (const SorSystem& s : work_.systems) bytes = std::max(bytes, sor::EstimateBytes(*s.a, batch));
    return bytes;
  }
  int64_t ProblemSize() const override {
    int64_t largest = 0;
    for (const SorSystem& s : work_.systems) largest = std::max(largest, s.a->nnz());
    return largest;
  }
  bool RequiresCpu() const override { return work_.options.ordering == sor::Ordering::kNatural; }

  JobOutcome Run(const Lane& lane, ::solverd::ProgressSink* sink,
                 const ::solverd::CancelToken* cancel) override;

 private:
  ::solverd::Status SolveOne(const Lane& lane, const SorSystem& system, const sor::SweepOrder& order,
                             const std::vector<double>& b, const std::vector<double>& x0,
                             ::solverd::ProgressSink* sink, const ::solverd::CancelToken* cancel,
                             sor::TunedSolve* out) const {
    sor::Options options = work_.options;
    options.threads = lane.cpu_threads;
    if (tuner_.has_value()) {
      return sor::SolveTuned(*tuner_->tuner, lane.device, lane.stream, *system.a, order, b, x0,
                             system.context, options, sink, cancel, out);
    }
    out->omega = options.omega;
    ::solverd::Status s = sor::Solve(lane.device, lane.stream, *system.a, order, b, x0, options,
                                     sink, cancel, &out->result);
    out->work_iterations = out->result.iterations;
    return s;
  }
  // Whether solves may share a batched launch: not when a warm start chains
  // each solve to the one before, nor when the tuner learns from each solve.
  bool Batchable() const {
    return !work_.warm_start && (!tuner_.has_value() || tuner_->tuner->chooses_ahead());
  }
  // How many items from `pos` on are solved as one batched launch:
  // consecutive, one pattern, at most kMaxBatch; 1 unless Batchable().
  size_t BatchLength(const std::vector<SolveItem>& items, size_t pos) const;
  // Solves items [pos, pos + count); statuses[k] is item pos + k's outcome.
  ::solverd::Status SolveGroup(const Lane& lane, const std::vector<SolveItem>& items, size_t pos,
                               size_t count, const sor::SweepOrder& order,
                               const std::vector<double>& previous,
                               ::solverd::ProgressSink* sink, const ::solverd::CancelToken* cancel,
                               std::vector<sor::TunedSolve>* solves,
                               std::vector<::solverd::Status>* statuses) const;

  const SorWork work_;
  const std::string tuner_name_;
  const std::optional<TunerRegistry::Entry> tuner_;
  const TunerRegistry* const registry_;  // to checkpoint the tuner after the run
};

size_t PreparedSor::BatchLength(const std::vector<SolveItem>& items, size_t pos) const {
  if (!Batchable()) return 1;
  const sor::CsrMatrix& first = *work_.systems[items[pos].system].a;
  size_t count = 1;
  while (pos + count < items.size() && count < static_cast<size_t>(sor::kMaxBatch) &&
         sor::SamePattern(first, *work_.systems[items[pos + count].system].a)) {
    ++count;
  }
  return count;
}

::solverd::Status PreparedSor::SolveGroup(
    const Lane& lane, const std::vector<SolveItem>& items, size_t pos, size_t count,
    const sor::SweepOrder& order, const std::vector<double>& previous,
    ::solverd::ProgressSink* sink, const ::solverd::CancelToken* cancel,
    std::vector<sor::TunedSolve>* solves, std::vector<::solverd::Status>* statuses) const {
  if (count == 1) {
    const SorSystem& system = work_.systems[items[pos].system];
    const std::vector<double>& b = system.rhs[items[pos].rhs];
    const bool warm = work_.warm_start && previous.size() == b.size();
    const std::vector<double>& x0 = !system.x0.empty() ? system.x0 : warm ? previous : system.x0;
    solves->resize(1);
    statuses->assign(1, ::solverd::Status::Ok());
    return SolveOne(lane, system, order, b, x0, sink, cancel, &(*solves)[0]);
  }
  std::vector<sor::SequenceSystem> batch;
  for (size_t k = pos; k < pos + count; ++k) {
    const SorSystem& system = work_.systems[items[k].system];
    batch.push_back({system.a.get(), &system.rhs[items[k].rhs], &system.x0, system.context});
  }
  sor::Options options = work_.options;
  options.threads = lane.cpu_threads;
  return sor::SolveTunedBatch(tuner_.has_value() ? tuner_->tuner.get() : nullptr, lane.device,
                              lane.stream, batch, order, options, sink, cancel, solves, statuses);
}

JobOutcome PreparedSor::Run(const Lane& lane, ::solverd::ProgressSink* sink,
                            const ::solverd::CancelToken* cancel) {
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  int64_t total = 0;
  for (const SorSystem& s : work_.systems) total += static_cast<int64_t>(s.rhs.size());
  JobOutcome outcome;
  v1::SorSequenceResult out;
  out.set_tuner(tuner_name_);
  std::vector<SolveItem> items;
  for (size_t i = 0; i < work_.systems.size(); ++i) {
    for (size_t k = 0; k < work_.systems[i].rhs.size(); ++k) {
      items.push_back({static_cast<int>(i), static_cast<int>(k)});
    }
  }
  const sor::CsrMatrix* ordered_for = nullptr;
  sor::SweepOrder order;
  std::vector<double> previous;
  ::solverd::Status status;
  for (size_t pos = 0; pos < items.size() && status.ok();) {
    const SorSystem& system = work_.systems[items[pos].system];
    if (ordered_for == nullptr || !sor::SamePattern(*ordered_for, *system.a)) {
      order = work_.options.ordering == sor::Ordering::kNatural ? sor::NaturalOrder(system.a->n)
                                                                : sor::MulticolorOrder(*system.a);
    }
    ordered_for = system.a.get();
    const size_t count = BatchLength(items, pos);
    SequenceSink inner(sink, static_cast<int64_t>(pos), static_cast<int64_t>(count), total,
                       items[pos].system);
    std::vector<sor::TunedSolve> solves;
    std::vector<::solverd::Status> statuses;
    status = SolveGroup(lane, items, pos, count, order, previous, sink ? &inner : nullptr,
                        cancel, &solves, &statuses);
    size_t failed = pos;  // the item an error belongs to
    for (size_t k = 0; k < solves.size(); ++k) {
      sor::TunedSolve& solve = solves[k];
      if (status.ok() && !statuses[k].ok()) {
        status = statuses[k];
        failed = pos + k;
      }
      if (!status.ok() && solve.result.x.empty()) break;
      Record(items[pos + k], solve, work_, &out, &outcome);
      previous = std::move(solve.result.x);
      if (sink != nullptr) ReportSolve(sink, solve, out, pos + k + 1, total, elapsed());
      if (!status.ok()) break;
    }
    if (status.code() == ::solverd::StatusCode::kInvalidArgument) {
      status = ::solverd::InvalidArgument(
          absl::StrCat("sor.systems[", items[failed].system, "].", status.message()));
    }
    pos += count;
  }
  out.set_seconds(elapsed());
  if (tuner_.has_value()) {
    // What it learned must survive a restart (and reach the other
    // replicas); a failed write costs the job nothing but is worth a line
    // in the log.
    auto kept = registry_->Persist(tuner_name_, *tuner_);
    if (!kept.ok()) {
      std::fprintf(stderr, "solverd: tuner %s: %s\n", tuner_name_.c_str(),
                   kept.status().ToString().c_str());
    }
    *out.mutable_tuner_state() =
        kept.ok() ? *std::move(kept) : TunerRegistry::ToProto(tuner_name_, *tuner_);
  }
  outcome.status = FromKernel(status);
  outcome.result.emplace();
  *outcome.result->mutable_sor() = std::move(out);
  return outcome;
}

}  // namespace

const FamilyInfo& SorFamily::Info() {
  static const FamilyInfo* const kInfo = new FamilyInfo{
      "sor", {v1::JobSpec::kSor}, {"max_sor_nonzeros", "nonzeros", int64_t{1} << 28}};
  return *kInfo;
}

absl::StatusOr<std::unique_ptr<Family>> SorFamily::Create(const FamilyServices& services) {
  std::unique_ptr<PgTunerStore> shared;
  if (!services.options->store.empty()) {
    PgConnection::Options connection;
    connection.uri = services.options->store;
    connection.password_file = services.options->store_password_file;
    auto opened = PgTunerStore::Open(connection);
    if (!opened.ok()) return opened.status();
    shared = *std::move(opened);
  }
  auto tuners = std::make_unique<TunerRegistry>(services.options->max_tuners,
                                                services.options->state_dir, std::move(shared));
  for (std::string& warning : tuners->Load()) services.warnings->push_back(std::move(warning));
  return std::make_unique<SorFamily>(std::move(tuners));
}

absl::StatusOr<std::unique_ptr<PreparedJob>> SorFamily::Prepare(
    const v1::JobSpec& spec, const PrepareContext& context) const {
  const v1::SorSequence& in = spec.sor();
  std::optional<TunerRegistry::Entry> tuner;
  if (!in.tuner().empty()) {
    auto entry = tuners_->Find(in.tuner());
    if (!entry.ok()) {
      return absl::Status(entry.status().code(),
                          absl::StrCat("sor.tuner: ", entry.status().message()));
    }
    tuner = *std::move(entry);
  }
  auto work = ConvertSorSequence(in, context);
  if (!work.ok()) return work.status();
  if (work->options.ordering == sor::Ordering::kNatural && spec.device() == v1::DEVICE_CUDA) {
    return absl::InvalidArgumentError("sor.ordering: natural ordering runs on the CPU only");
  }
  return std::make_unique<PreparedSor>(*std::move(work), in.tuner(), std::move(tuner),
                                       tuners_.get());
}

}  // namespace solverd::server
