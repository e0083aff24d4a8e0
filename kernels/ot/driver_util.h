// Pieces shared by the ot drivers (RunSinkhorn, RunSns): timing, progress
// reporting, the Sinkhorn stage, and filling the result. Internal.
// Stateless; each call works on its caller's objects alone, so
// drivers on different threads never share anything here.
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

// The bookkeeping of one problem's Sinkhorn stage, step by step: which
// iterations measure, when the stage ends, progress. SinkhornStage() runs
// it around one backend's iterations, the batched CUDA loop around one
// launch for many problems, so both stop alike.
class SinkhornSteps {
 public:
  // Ends after `max_steps` iterations, when `state` is finished, or (when
  // stop_on_stall) once the error shrinks by less than half over a check
  // window. sink and cancel may be null.
  SinkhornSteps(const Options& options, int64_t max_steps, bool stop_on_stall,
                ProgressSink* sink, const CancelToken* cancel, SolveState* state);

  // The next iteration's measurement: whether it measures the row error,
  // and the error at or below which it must not update (as
  // OtBackend::SinkhornIteration takes them).
  void Begin(bool* check, double* keep_below);
  // Records the iteration begun: its error (when it measured) and whether
  // it updated. Returns whether the stage goes on.
  bool End(double error, bool updated);
  // Whether the stage ended on a stall.
  bool stalled() const { return stalled_; }

 private:
  const Options& options_;
  const int64_t max_steps_;
  const bool stop_on_stall_;
  ProgressSink* const sink_;
  const CancelToken* const cancel_;
  SolveState* const state_;
  int64_t step_ = 0;
  bool check_ = false;
  double window_start_error_ = -1;
  bool stalled_ = false;
};

// Runs Sinkhorn iterations until `state` is finished, `max_steps` more
// iterations have run, or (when stop_on_stall) the error shrinks by less
// than half over a check window. Ends with the potentials balanced on the
// columns and state->error measured at them.
Status SinkhornStage(OtBackend& backend, const Options& options, int64_t max_steps,
                     bool stop_on_stall, ProgressSink* sink, const CancelToken* cancel,
                     SolveState* state);

// Puts the figures of `state` and the plan totals in *result (potentials
// and plans are the caller's).
void FillResultFigures(const Problem& problem, const SolveState& state, double transport_cost,
                       double plogp, Result* result);

// Fills *result from the backend's current potentials and `state`; returns
// state.stop (OK unless cancelled or past the deadline).
Status FinishSolve(OtBackend& backend, const Problem& problem, const Options& options,
                   const SolveState& state, Result* result);

}  // namespace solverd::ot::internal

#endif  // SOLVERD_KERNELS_OT_DRIVER_UTIL_H_
