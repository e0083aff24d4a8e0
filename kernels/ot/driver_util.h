// Pieces shared by the ot drivers (RunSinkhorn, RunSns): timing, progress
// reporting, the Sinkhorn stage, and filling the result. Internal.
// Stateless; each call works on its caller's objects alone, so
// drivers on different threads never share anything here.
#ifndef SOLVERD_KERNELS_OT_DRIVER_UTIL_H_
#define SOLVERD_KERNELS_OT_DRIVER_UTIL_H_

#include <chrono>
#include <string>

#include "ot/ot_backend.h"
#include "ot/overrelaxation.h"

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
  double sinkhorn_seconds = 0;  // wall time in each stage (StageClock)
  double newton_seconds = 0;
  double cg_seconds = 0;        // within newton_seconds, in OtBackend::SolveSchur
  RelaxationTuner relaxation;   // of the Sinkhorn iterations, across stages
  double fraction = 0;          // of the work done, as last reported
  bool finished = false;    // termination below is final
  Termination termination = Termination::kMaxIterations;
  Status stop;              // kCancelled / kDeadlineExceeded when stopped

  int64_t iterations() const { return sinkhorn_iterations + newton_iterations; }
  double seconds() const;
};

// Adds the wall time of its scope to *seconds, less what a nested stage
// added to *nested meanwhile (the Sinkhorn windows Newton falls back to), so
// each stage's time is its own.
class StageClock {
 public:
  explicit StageClock(double* seconds, const double* nested = nullptr)
      : seconds_(seconds), nested_(nested), nested_before_(nested ? *nested : 0) {}
  ~StageClock() {
    const double nested = nested_ != nullptr ? *nested_ - nested_before_ : 0;
    *seconds_ += std::chrono::duration<double>(Clock::now() - start_).count() - nested;
  }
  StageClock(const StageClock&) = delete;
  StageClock& operator=(const StageClock&) = delete;

 private:
  double* const seconds_;
  const double* const nested_;
  const double nested_before_;
  const Clock::time_point start_ = Clock::now();
};

// Reports progress for the current state (stage "sinkhorn" or "newton").
void ReportProgress(ProgressSink* sink, SolveState* state, const Options& options,
                    const char* stage);

// ||r - a||_1 + ||c - b||_1 for the plan's row sums r and column sums c:
// the error every stopping rule compares with the tolerance.
double MarginalError(const Problem& problem, const std::vector<double>& r,
                     const std::vector<double>& c);

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
  // stop_on_stall, for auto) once the Newton stage is predicted to finish
  // sooner: Sinkhorn's rate over the last check window, extrapolated to the
  // tolerance, needs more iterations than kNewtonStageCost. sink and
  // cancel may be null.
  SinkhornSteps(const Problem& problem, const Options& options, int64_t max_steps,
                bool stop_on_stall, ProgressSink* sink, const CancelToken* cancel,
                SolveState* state);

  // The next iteration's measurement: whether it measures the row error,
  // and the error at or below which it must not update (as
  // OtBackend::SinkhornIteration takes them). The row error is the whole
  // error only once an update has balanced the columns: the stage's first
  // iteration updates whatever it measures, unless it is also its last.
  void Begin(bool* check, double* keep_below);
  // The over-relaxation of the iteration begun.
  const Relaxation& relaxation() const { return state_->relaxation.relaxation(); }
  // Records the iteration begun: its error (when it measured) and whether
  // it updated. Returns whether the stage goes on.
  bool End(double error, bool updated);
  // Whether the stage ended on a stall.
  bool stalled() const { return stalled_; }
  // Whether any iteration updated: else the columns are as the stage found
  // them and the last row error measured is not the whole error.
  bool updated() const { return updated_; }

 private:
  const Options& options_;
  const double mass_;  // sum(a)
  const int64_t max_steps_;
  const bool stop_on_stall_;
  ProgressSink* const sink_;
  const CancelToken* const cancel_;
  SolveState* const state_;
  // Whether Sinkhorn, at `error` now, is predicted to need more iterations
  // to the tolerance than the Newton stage costs; or it is slowing down
  // (its prediction grew by kSlowingGrowth kSlowingWindows windows running)
  // and needs more than a quarter of that. Never while the error is above
  // kNewtonStartShare of the mass.
  bool NewtonPredictedSooner(double error, double window_omega);

  int64_t step_ = 0;
  bool check_ = false;
  bool updated_ = false;
  double window_start_error_ = -1;
  int64_t window_start_step_ = 0;
  double last_remaining_ = INFINITY;  // iterations predicted at the last window
  int windows_slowing_ = 0;
  bool stalled_ = false;
};

// What auto expects the whole Newton stage to cost, in Sinkhorn iterations
// of the same problem: a few Newton steps (2-4 on point clouds, 8 on random
// assignment), each 7-19 iterations' time on the CPU (pot_n2000 3 x 7,
// pot_n500 4 x 12, random assignment 8 x 6-8:
// newton_step_in_sinkhorn_iterations), plus, for auto, rebuilding in double
// the kernel its Sinkhorn kept in single precision. It was 400 when a step
// cost 40-100 iterations, then 120 at 20-30; at 120, once steps had got
// cheaper, auto kept Sinkhorn where SNS was 1.3-1.6x faster (point clouds
// at eta = 50, 90 iterations to go at iteration 21: n = 500 Sinkhorn
// 0.0035 s, SNS 0.0021-0.0024 s, auto after moving on 0.0022-0.0027 s;
// n = 2000 0.046 s, 0.029 s, 0.029 s). At 40 it keeps Sinkhorn at eta = 20
// (24 to go, where Sinkhorn is the faster at n = 200 and 500) and moves on
// at eta = 30 (46 to go; n = 2000 Sinkhorn 0.028-0.031 s, SNS 0.024 s,
// auto 0.025 s; at n = 500 the three within 0.0021-0.0026 s) and on all
// of bench/ot's cases at iteration 21 (predictions 144-203 there). Since
// Sinkhorn is over-relaxed, the prediction from its first, plain windows
// counts on a tuned omega to leave kTunedShare of it (overrelaxation.h):
// at n = 2000 auto then keeps Sinkhorn at eta = 30 and 50 (46 and 92 to go
// classic, 50 and 60 iterations tuned: Sinkhorn 0.027 and 0.030 s, SNS
// 0.028 and 0.034 s, auto 0.026 and 0.028 s) and still moves on at
// iteration 21 on pot_n2000, pot_n5000 and random assignment.
inline constexpr double kNewtonStageCost = 40;
// Sinkhorn on random assignment slows down window after window (predicted
// iterations to go 25, 144, 187, 229, ... 419 at iteration 81, against the
// 21,300 it takes: each window 20-30% more), so the prediction alone, at
// kNewtonStageCost 400, moved to Newton late; this rule still catches a
// Sinkhorn that starts fast and then slows. On point clouds the
// prediction stops growing by a tenth
// after at most two windows (7, 133, 181, 171 at n = 2000; 10, 173, 179,
// 179 at n = 500) as the rate settles.
inline constexpr int kSlowingWindows = 3;
inline constexpr double kSlowingGrowth = 1.1;
// auto moves on only once the error is at most this share of the mass.
// From farther off, Newton steps on bench/ot's 28 x 28 densities were
// damped (W1 at iteration 21, error 0.6: a step of 1/256, then one of 1/2,
// each costing about 60 Sinkhorn iterations and the windows after them),
// where the over-relaxed Sinkhorn, run on to below a tenth of the mass
// (W1 121 iterations, W2 61), leaves potentials Newton takes in full steps
// (auto, fastest of 3 x 7 solves on the dev VM: W1 0.036 -> 0.026 s, W2
// 0.012 -> 0.0097 s, against Sinkhorn 0.033 and 0.013 s; W1 at eta = 1000
// 0.144 -> 0.136 s, Sinkhorn 0.124 s). Point clouds and random assignment
// are below it by iteration 21 (pot_n200 0.06), and move on as before.
inline constexpr double kNewtonStartShare = 0.1;

// Runs Sinkhorn iterations until `state` is finished, `max_steps` more
// iterations have run, or (when stop_on_stall) SinkhornSteps predicts the
// Newton stage to finish sooner. Ends with state->error measured at the
// potentials it leaves (balanced on the columns, unless no iteration ran).
Status SinkhornStage(OtBackend& backend, const Problem& problem, const Options& options,
                     int64_t max_steps, bool stop_on_stall, ProgressSink* sink,
                     const CancelToken* cancel, SolveState* state);

// How many Sinkhorn iterations the Sinkhorn stage of options.method runs
// at most: sns_sinkhorn_steps for SNS, all of them otherwise (auto leaves
// earlier, on a stall).
inline int64_t SinkhornStageSteps(const Options& options) {
  return options.method == Method::kSns ? options.sns_sinkhorn_steps : options.max_iterations;
}

// After the Sinkhorn stage of an SNS or auto solve (`state` as it left it,
// the backend at its potentials): the Newton stage unless `state` is
// finished, then FinishSolve().
Status FinishSns(OtBackend& backend, const Problem& problem, const Options& options,
                 ProgressSink* sink, const CancelToken* cancel, SolveState* state,
                 Result* result);

// FinishSns() on a backend of its own, set to potentials (x, y): for
// problems whose Sinkhorn stage ran elsewhere (the batched CUDA loop). Each
// backend's, so a problem goes on as it would have alone.
Status ContinueSnsCpu(const Problem& problem, const Options& options,
                      const std::vector<double>& x, const std::vector<double>& y,
                      ProgressSink* sink, const CancelToken* cancel, SolveState* state,
                      Result* result);
#ifdef SOLVERD_HAVE_CUDA
Status ContinueSnsCuda(const Device& device, StreamHandle stream, const Problem& problem,
                       const Options& options, const std::vector<double>& x,
                       const std::vector<double>& y, ProgressSink* sink,
                       const CancelToken* cancel, SolveState* state, Result* result);
#endif

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
