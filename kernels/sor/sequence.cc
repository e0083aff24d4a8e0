#include "sor/sequence.h"

#include <algorithm>

namespace solverd::sor {
namespace {

// Fewer iterations wins; a converged solve beats one that did not converge.
bool Better(const Result& a, const Result& b) {
  if (a.converged != b.converged) return a.converged;
  return a.iterations < b.iterations;
}

// A solve that did not converge (or diverged and stopped early) counts as
// the whole budget, so no tuner learns to like a diverging omega.
int64_t FeedbackIterations(const Result& r, const Options& o) {
  return r.converged ? r.iterations : std::max(r.iterations, o.max_iterations);
}

}  // namespace

Status SolveTuned(Tuner& tuner, const Device& device, StreamHandle stream, const CsrMatrix& a,
                  const SweepOrder& order, const std::vector<double>& b,
                  const std::vector<double>& x0, double context, const Options& options,
                  ProgressSink* sink, const CancelToken* cancel, TunedSolve* out) {
  *out = TunedSolve();
  const std::vector<double>& grid = tuner.grid();
  if (!tuner.tries_every_arm()) {
    Options o = options;
    out->arm = tuner.Choose(context);
    out->omega = o.omega = grid[out->arm];
    Status s = Solve(device, stream, a, order, b, x0, o, sink, cancel, &out->result);
    out->work_iterations = out->result.iterations;
    if (s.ok()) tuner.Observe(out->arm, context, FeedbackIterations(out->result, o));
    return s;
  }
  // Every grid omega on the same system: batched launches, kMaxBatch at a time.
  std::vector<int64_t> iterations(grid.size());
  for (size_t first = 0; first < grid.size(); first += kMaxBatch) {
    const size_t count = std::min(grid.size() - first, static_cast<size_t>(kMaxBatch));
    std::vector<BatchSystem> batch(count, BatchSystem{&a, &b, &x0, 0});
    for (size_t k = 0; k < count; ++k) batch[k].omega = grid[first + k];
    std::vector<Result> results;
    std::vector<Status> statuses;
    SOLVERD_RETURN_IF_ERROR(
        SolveBatch(device, stream, batch, order, options, sink, cancel, &results, &statuses));
    for (size_t k = 0; k < count; ++k) {
      SOLVERD_RETURN_IF_ERROR(statuses[k]);
      const size_t arm = first + k;
      iterations[arm] = FeedbackIterations(results[k], options);
      out->work_iterations += results[k].iterations;
      if (arm == 0 || Better(results[k], out->result)) {
        out->arm = static_cast<int>(arm);
        out->omega = grid[arm];
        out->result = std::move(results[k]);
      }
    }
  }
  tuner.ObserveAll(context, iterations);
  return Status::Ok();
}

Status SolveTunedBatch(Tuner* tuner, const Device& device, StreamHandle stream,
                       const std::vector<SequenceSystem>& systems, const SweepOrder& order,
                       const Options& options, ProgressSink* sink, const CancelToken* cancel,
                       std::vector<TunedSolve>* out, std::vector<Status>* statuses) {
  if (tuner != nullptr && !tuner->chooses_ahead()) {
    return FailedPrecondition("this tuner learns from each solve; solve its systems in turn");
  }
  out->assign(systems.size(), TunedSolve());
  std::vector<BatchSystem> batch;
  for (size_t k = 0; k < systems.size(); ++k) {
    TunedSolve& t = (*out)[k];
    if (tuner != nullptr) t.arm = tuner->Choose(systems[k].context);
    t.omega = tuner != nullptr ? tuner->grid()[t.arm] : options.omega;
    batch.push_back({systems[k].a, systems[k].b, systems[k].x0, t.omega});
  }
  std::vector<Result> results;
  const Status s = SolveBatch(device, stream, batch, order, options, sink, cancel, &results,
                              statuses);
  for (size_t k = 0; k < results.size(); ++k) {
    TunedSolve& t = (*out)[k];
    t.result = std::move(results[k]);
    t.work_iterations = t.result.iterations;
    if (s.ok() && (*statuses)[k].ok() && tuner != nullptr) {
      tuner->Observe(t.arm, systems[k].context, FeedbackIterations(t.result, options));
    }
  }
  return s;
}

}  // namespace solverd::sor
