#include "server/sor_family.h"

#include <chrono>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/sor_convert.h"
#include "server/status_util.h"
#include "server/tuner_registry.h"
#include "sor/sequence.h"

namespace solverd::server {
namespace {

namespace sor = ::solverd::sor;

// Passes a solve's own progress on as progress of the whole sequence.
class SequenceSink final : public ::solverd::ProgressSink {
 public:
  SequenceSink(::solverd::ProgressSink* out, int64_t done, int64_t total, int system)
      : out_(out), done_(done), total_(total), system_(system) {}
  void Report(const ::solverd::Progress& p) override {
    ::solverd::Progress q = p;
    q.fraction = (done_ + p.fraction) / total_;
    q.extras.emplace_back("system", system_);
    out_->Report(q);
  }

 private:
  ::solverd::ProgressSink* const out_;
  const int64_t done_, total_;
  const int system_;
};

class PreparedSor final : public PreparedJob {
 public:
  PreparedSor(SorWork work, std::string tuner_name, std::optional<TunerRegistry::Entry> tuner,
              const TunerRegistry* registry)
      : work_(std::move(work)), tuner_name_(std::move(tuner_name)), tuner_(std::move(tuner)),
        registry_(registry) {}

  int64_t MemoryBytes() const override {
    int64_t bytes = 0;
    for (const SorSystem& s : work_.systems) bytes = std::max(bytes, sor::EstimateBytes(*s.a));
    return bytes;
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

  const SorWork work_;
  const std::string tuner_name_;
  const std::optional<TunerRegistry::Entry> tuner_;
  const TunerRegistry* const registry_;  // to checkpoint the tuner after the run
};

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
  const sor::CsrMatrix* ordered_for = nullptr;
  sor::SweepOrder order;
  std::vector<double> previous;
  int64_t done = 0;
  ::solverd::Status status;
  for (size_t i = 0; i < work_.systems.size() && status.ok(); ++i) {
    const SorSystem& system = work_.systems[i];
    if (ordered_for == nullptr || !sor::SamePattern(*ordered_for, *system.a)) {
      order = work_.options.ordering == sor::Ordering::kNatural ? sor::NaturalOrder(system.a->n)
                                                                : sor::MulticolorOrder(*system.a);
    }
    ordered_for = system.a.get();
    for (size_t k = 0; k < system.rhs.size() && status.ok(); ++k) {
      const bool warm = work_.warm_start && previous.size() == system.rhs[k].size();
      const std::vector<double>& x0 = !system.x0.empty() ? system.x0 : warm ? previous : system.x0;
      SequenceSink inner(sink, done, total, static_cast<int>(i));
      sor::TunedSolve solve;
      status = SolveOne(lane, system, order, system.rhs[k], x0, sink ? &inner : nullptr, cancel, &solve);
      if (!status.ok() && solve.result.x.empty()) break;
      v1::SorSolveResult* r = out.add_solves();
      r->set_system(static_cast<int>(i));
      r->set_rhs(static_cast<int>(k));
      r->set_omega(solve.omega);
      r->set_iterations(solve.result.iterations);
      r->set_relative_residual(solve.result.relative_residual);
      r->set_converged(solve.result.converged);
      r->set_seconds(solve.result.seconds);
      r->set_work_iterations(solve.work_iterations);
      if (!work_.omit_solutions) r->mutable_x()->Add(solve.result.x.begin(), solve.result.x.end());
      out.set_total_iterations(out.total_iterations() + solve.result.iterations);
      outcome.iterations += solve.work_iterations;
      previous = std::move(solve.result.x);
      ++done;
      if (sink == nullptr) continue;
      ::solverd::Progress p;
      p.iteration = done;
      p.residual = solve.result.relative_residual;
      p.objective = static_cast<double>(out.total_iterations());
      p.fraction = static_cast<double>(done) / total;
      p.elapsed_seconds = elapsed();
      p.stage = "sequence";
      p.extras = {{"omega", solve.omega}, {"iterations", static_cast<double>(solve.result.iterations)}};
      sink->Report(p);
    }
    if (status.code() == ::solverd::StatusCode::kInvalidArgument) {
      status = ::solverd::InvalidArgument(absl::StrCat("sor.systems[", i, "].", status.message()));
    }
  }
  out.set_seconds(elapsed());
  if (tuner_.has_value()) {
    *out.mutable_tuner_state() = TunerRegistry::ToProto(tuner_name_, *tuner_);
    // What it learned must survive a restart; a failed write costs the job
    // nothing but is worth a line in the log.
    if (absl::Status s = registry_->Persist(tuner_name_); !s.ok()) {
      std::fprintf(stderr, "solverd: tuner %s: %s\n", tuner_name_.c_str(), s.ToString().c_str());
    }
  }
  outcome.status = FromKernel(status);
  outcome.result.emplace();
  *outcome.result->mutable_sor() = std::move(out);
  return outcome;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PreparedJob>> SorFamily::Prepare(
    const v1::JobSpec& spec, const PrepareContext& context) const {
  const v1::SorSequence& in = spec.sor();
  std::optional<TunerRegistry::Entry> tuner;
  if (!in.tuner().empty()) {
    if (context.tuners == nullptr) return absl::FailedPreconditionError("sor.tuner: no tuners here");
    auto entry = context.tuners->Find(in.tuner());
    if (!entry.ok()) return absl::NotFoundError(absl::StrCat("sor.tuner: ", entry.status().message()));
    tuner = *std::move(entry);
  }
  auto work = ConvertSorSequence(in, context);
  if (!work.ok()) return work.status();
  if (work->options.ordering == sor::Ordering::kNatural && spec.device() == v1::DEVICE_CUDA) {
    return absl::InvalidArgumentError("sor.ordering: natural ordering runs on the CPU only");
  }
  return std::make_unique<PreparedSor>(*std::move(work), in.tuner(), std::move(tuner),
                                       context.tuners);
}

}  // namespace solverd::server
