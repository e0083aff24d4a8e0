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
  std::vector<int64_t> iterations(grid.size());
  for (size_t arm = 0; arm < grid.size(); ++arm) {
    Options o = options;
    o.omega = grid[arm];
    Result r;
    SOLVERD_RETURN_IF_ERROR(Solve(device, stream, a, order, b, x0, o, sink, cancel, &r));
    iterations[arm] = FeedbackIterations(r, o);
    out->work_iterations += r.iterations;
    if (arm == 0 || Better(r, out->result)) {
      out->arm = static_cast<int>(arm);
      out->omega = grid[arm];
      out->result = std::move(r);
    }
  }
  tuner.ObserveAll(context, iterations);
  return Status::Ok();
}

}  // namespace solverd::sor
