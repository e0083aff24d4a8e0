// The backend-independent Sinkhorn loop.
#include <algorithm>
#include <chrono>
#include <cmath>

#include "ot/sinkhorn_backend.h"

namespace solverd::ot::internal {
namespace {

using Clock = std::chrono::steady_clock;

// How far along the solve looks: the larger of the iteration budget used
// and the log-scale progress of the error from its first value to the
// tolerance (Sinkhorn's error falls roughly geometrically).
double Fraction(int64_t it, double error, double first_error, const Options& o) {
  double f = o.max_iterations > 0 ? static_cast<double>(it) / o.max_iterations : 0;
  if (o.tolerance > 0 && first_error > o.tolerance && error > 0) {
    f = std::max(f, std::log(first_error / error) / std::log(first_error / o.tolerance));
  }
  return std::clamp(f, 0.0, 1.0);
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Fills the figures of *result from the backend's current state.
Status Finish(SinkhornBackend& backend, const Problem& problem,
              const Options& options, Result* result) {
  double plogp = 0;
  SOLVERD_RETURN_IF_ERROR(backend.PlanTotals(&result->transport_cost, &plogp));
  result->entropic_objective = result->transport_cost + plogp / problem.eta;
  SOLVERD_RETURN_IF_ERROR(backend.CopyPotentials(&result->x, &result->y));
  if (options.want_plan) SOLVERD_RETURN_IF_ERROR(backend.CopyPlan(&result->plan));
  return Status::Ok();
}

}  // namespace

Status RunSinkhorn(SinkhornBackend& backend, const Problem& problem,
                   const Options& options, ProgressSink* sink,
                   const CancelToken* cancel, Result* result) {
  const auto start = Clock::now();
  const int check_every = options.check_every > 0 ? options.check_every : 1;
  *result = Result();
  result->marginal_error = -1;  // unknown until the first check
  Status stop;
  double first_error = -1;
  int64_t it = 0;
  for (;; ++it) {
    const bool check = it % check_every == 0 || it == options.max_iterations;
    double error = 0;
    SOLVERD_RETURN_IF_ERROR(backend.RowPass(check ? &error : nullptr));
    if (check) {
      result->marginal_error = error;
      if (first_error < 0) first_error = error;
      if (sink != nullptr) {
        Progress p;
        p.iteration = it;
        p.residual = error;
        p.elapsed_seconds = SecondsSince(start);
        p.stage = "sinkhorn";
        p.fraction = Fraction(it, error, first_error, options);
        sink->Report(p);
      }
      if (error <= options.tolerance) {
        result->termination = Termination::kConverged;
        break;
      }
    }
    if (it == options.max_iterations) {
      result->termination = Termination::kMaxIterations;
      break;
    }
    stop = CheckCancel(cancel);
    if (!stop.ok()) {
      result->termination = Termination::kStopped;
      break;
    }
    if (options.time_limit_seconds > 0 &&
        SecondsSince(start) >= options.time_limit_seconds) {
      result->termination = Termination::kTimeLimit;
      break;
    }
    SOLVERD_RETURN_IF_ERROR(backend.UpdateRows());
    SOLVERD_RETURN_IF_ERROR(backend.UpdateColumns());
  }
  result->iterations = it;
  if (!stop.ok() || result->termination == Termination::kTimeLimit) {
    // Stopped between checks: measure the iterate we are returning.
    double error = 0;
    SOLVERD_RETURN_IF_ERROR(backend.RowPass(&error));
    result->marginal_error = error;
  }
  SOLVERD_RETURN_IF_ERROR(Finish(backend, problem, options, result));
  return stop;
}

}  // namespace solverd::ot::internal
