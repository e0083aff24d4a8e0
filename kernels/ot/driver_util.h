// Pieces shared by the ot drivers (RunSinkhorn, RunSns): timing, progress
// reporting, the Sinkhorn stage, and filling the result. Internal.
#ifndef SOLVERD_KERNELS_OT_DRIVER_UTIL_H_
#define SOLVERD_KERNELS_OT_DRIVER_UTIL_H_

#include <chrono>
#include <string>

#include "ot/ot_backend.h"

namespace solverd::ot::internal {

using Clock = std::chrono::steady_clock;

// What a solve has done so far, carried from stage to stage.
struct SolveState {
  Clock::time_point start = Clock::now();
  double first_error = -1;  // the first error measured, for progress fractions
  double error = -1;        // the latest ||P1 - a||_1 + ||P^T 1 - b||_1
  bool error_current = false;  // `error` is of the current potentials
  int64_t sinkhorn_iterations = 0;
  int64_t newton_iterations = 0;
  bool finished = false;    // termination below is final
  Termination termination = Termination::kMaxIterations;
  Status stop;              // kCancelled / kDeadlineExceeded when stopped

  int64_t iterations() const { return sinkhorn_iterations + newton_iterations; }
  double seconds() const;
};

// Reports progress for the current state (stage "sinkhorn" or "newton").
void ReportProgress(ProgressSink* sink, const SolveState& state, const Options& options,
                    const char* stage);

// Marks *state finished if it is converged, out of iterations or time, or
// stopped by `cancel`; returns whether it is.
bool CheckLimits(const Options& options, const CancelToken* cancel, SolveState* state);

// Whether the solve must stop whatever its error: out of iterations or
// time, or stopped by `cancel` (CheckLimits() then says which).
bool BudgetSpent(const Options& options, const CancelToken* cancel, const SolveState& state);

// Runs Sinkhorn iterations until `state` is finished, `max_steps` more
// iterations have run, or (when stop_on_stall) the error shrinks by less
// than half over a check window. Ends with the potentials balanced on the
// columns and state->error measured at them.
Status SinkhornStage(OtBackend& backend, const Options& options, int64_t max_steps,
                     bool stop_on_stall, ProgressSink* sink, const CancelToken* cancel,
                     SolveState* state);

// Fills *result from the backend's current potentials and `state`; returns
// state.stop (OK unless cancelled or past the deadline).
Status FinishSolve(OtBackend& backend, const Problem& problem, const Options& options,
                   const SolveState& state, Result* result);

}  // namespace solverd::ot::internal

#endif  // SOLVERD_KERNELS_OT_DRIVER_UTIL_H_
