// The backend-independent Sinkhorn loop, and the helpers every ot driver
// shares.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "ot/driver_util.h"

namespace solverd::ot::internal {
namespace {

// How far along the solve looks: the larger of the iteration budget used
// and the log-scale progress of the error from its first value to the
// tolerance (the error falls roughly geometrically).
double Fraction(const SolveState& s, const Options& o) {
  double f = o.max_iterations > 0 ? static_cast<double>(s.iterations()) / o.max_iterations : 0;
  if (o.tolerance > 0 && s.first_error > o.tolerance && s.error > 0) {
    f = std::max(f, std::log(s.first_error / s.error) / std::log(s.first_error / o.tolerance));
  }
  return std::clamp(f, 0.0, 1.0);
}

// Row-major order, so both backends return the same bytes.
void SortSparsePlan(SparsePlan* plan) {
  std::vector<size_t> order(plan->values.size());
  for (size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::sort(order.begin(), order.end(), [&](size_t u, size_t v) {
    return std::pair(plan->rows[u], plan->cols[u]) < std::pair(plan->rows[v], plan->cols[v]);
  });
  SparsePlan sorted;
  for (size_t k : order) {
    sorted.rows.push_back(plan->rows[k]);
    sorted.cols.push_back(plan->cols[k]);
    sorted.values.push_back(plan->values[k]);
  }
  *plan = std::move(sorted);
}

// Whether the solve must stop whatever its error: out of iterations or
// time, or stopped by `cancel` (CheckLimits() then says which).
bool BudgetSpent(const Options& options, const CancelToken* cancel, const SolveState& state) {
  return state.iterations() >= options.max_iterations || !CheckCancel(cancel).ok() ||
         (options.time_limit_seconds > 0 && state.seconds() >= options.time_limit_seconds);
}

}  // namespace

double SolveState::seconds() const {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void ReportProgress(ProgressSink* sink, SolveState* state, const Options& options,
                    const char* stage) {
  if (sink == nullptr) return;
  // An over-relaxed iteration's error may rise for a window after omega
  // changes, a Newton step's too: what a solve reports done never goes back.
  state->fraction = std::max(state->fraction, Fraction(*state, options));
  Progress p;
  p.iteration = state->iterations();
  p.residual = state->error;
  p.elapsed_seconds = state->seconds();
  p.stage = stage;
  p.fraction = state->fraction;
  p.extras = {{"sinkhorn_iterations", static_cast<double>(state->sinkhorn_iterations)},
              {"newton_iterations", static_cast<double>(state->newton_iterations)}};
  sink->Report(p);
}

bool CheckLimits(const Options& options, const CancelToken* cancel, SolveState* state) {
  if (state->error_current && state->error >= 0 && state->error <= options.tolerance) {
    state->termination = Termination::kConverged;
  } else if (state->iterations() >= options.max_iterations) {
    state->termination = Termination::kMaxIterations;
  } else if (!(state->stop = CheckCancel(cancel)).ok()) {
    state->termination = Termination::kStopped;
  } else if (options.time_limit_seconds > 0 && state->seconds() >= options.time_limit_seconds) {
    state->termination = Termination::kTimeLimit;
  } else {
    return false;
  }
  state->finished = true;
  return true;
}

SinkhornSteps::SinkhornSteps(const Problem& problem, const Options& options, int64_t max_steps,
                             bool stop_on_stall, ProgressSink* sink, const CancelToken* cancel,
                             SolveState* state)
    : options_(options), mass_(std::accumulate(problem.a.begin(), problem.a.end(), 0.0)),
      max_steps_(max_steps), stop_on_stall_(stop_on_stall), sink_(sink), cancel_(cancel),
      state_(state) {
  state_->relaxation.BeginStage(options.overrelaxation);
}

void SinkhornSteps::Begin(bool* check, double* keep_below) {
  // The budget is checked before an iteration; convergence by the
  // iteration itself, which measures first and then does not update.
  const int check_every = options_.check_every > 0 ? options_.check_every : 1;
  const bool last = step_ == max_steps_ || BudgetSpent(options_, cancel_, *state_);
  check_ = last || step_ % check_every == 0;
  *check = check_;
  *keep_below = last ? INFINITY : check_ && updated_ ? options_.tolerance : -INFINITY;
}

bool SinkhornSteps::End(double error, bool updated) {
  ++step_;
  // The error is whole once an update of this stage balanced the columns.
  const double window_omega = state_->relaxation.relaxation().omega;
  if (check_ && updated_) state_->relaxation.Observe(state_->sinkhorn_iterations, error);
  if (check_) {
    state_->error = error;
    if (state_->first_error < 0) state_->first_error = error;
    ReportProgress(sink_, state_, options_, "sinkhorn");
  }
  // Without an update in this stage, the error measured leaves the columns
  // out: never current, so never converged.
  state_->error_current = !updated && updated_;
  if (!updated) {
    CheckLimits(options_, cancel_, state_);
    return false;
  }
  updated_ = true;
  ++state_->sinkhorn_iterations;
  if (check_ && stop_on_stall_) {
    if (window_start_error_ > 0 && NewtonPredictedSooner(error, window_omega)) {
      stalled_ = true;
      return false;
    }
    window_start_error_ = error;
    window_start_step_ = step_;
  }
  return true;
}

bool SinkhornSteps::NewtonPredictedSooner(double error, double window_omega) {
  const double steps = static_cast<double>(step_ - window_start_step_);
  if (!(error > options_.tolerance) || steps <= 0) return false;
  // Not even on an error that grew: right after omega changes it may.
  if (error > kNewtonStartShare * mass_) return false;
  const double rate = std::pow(error / window_start_error_, 1.0 / steps);  // per iteration
  if (!(rate < 1)) return true;  // not shrinking at all
  const double remaining = state_->relaxation.ExpectedIterations(
      std::log(options_.tolerance / error) / std::log(rate), window_omega);
  windows_slowing_ = remaining > kSlowingGrowth * last_remaining_ ? windows_slowing_ + 1 : 0;
  last_remaining_ = remaining;
  if (remaining > kNewtonStageCost) return true;
  // A rate that keeps getting worse makes every prediction too low.
  return windows_slowing_ >= kSlowingWindows && remaining > kNewtonStageCost / 4;
}

Status SinkhornStage(OtBackend& backend, const Problem& problem, const Options& options,
                     int64_t max_steps, bool stop_on_stall, ProgressSink* sink,
                     const CancelToken* cancel, SolveState* state) {
  StageClock clock(&state->sinkhorn_seconds);
  SinkhornSteps steps(problem, options, max_steps, stop_on_stall, sink, cancel, state);
  for (;;) {
    bool check = false, updated = false;
    double keep_below = 0, error = -1;
    steps.Begin(&check, &keep_below);
    SOLVERD_RETURN_IF_ERROR(backend.SinkhornIteration(keep_below, steps.relaxation(),
                                                      check ? &error : nullptr, &updated));
    if (!steps.End(error, updated)) break;
  }
  if (!state->error_current) {  // stalled or no update: measure where the stage ends
    if (steps.updated()) {
      SOLVERD_RETURN_IF_ERROR(backend.RowPass(&state->error));
    } else {
      std::vector<double> r, c;
      double total = 0;
      SOLVERD_RETURN_IF_ERROR(backend.PlanMarginals(&r, &c, &total));
      state->error_current = true;
      state->error = MarginalError(problem, r, c);
      CheckLimits(options, cancel, state);  // converged after all?
    }
    state->error_current = true;
  }
  return Status::Ok();
}

double MarginalError(const Problem& problem, const std::vector<double>& r,
                     const std::vector<double>& c) {
  double error = 0;
  for (int64_t i = 0; i < problem.n; ++i) error += std::fabs(r[i] - problem.a[i]);
  for (int64_t j = 0; j < problem.m; ++j) error += std::fabs(c[j] - problem.b[j]);
  return std::isfinite(error) ? error : INFINITY;
}

void FillResultFigures(const Problem& problem, const SolveState& state, double transport_cost,
                       double plogp, Result* result) {
  result->marginal_error = state.error;
  result->sinkhorn_iterations = state.sinkhorn_iterations;
  result->newton_iterations = state.newton_iterations;
  result->sinkhorn_seconds = state.sinkhorn_seconds;
  result->newton_seconds = state.newton_seconds;
  result->cg_seconds = state.cg_seconds;
  result->iterations = state.iterations();
  result->termination = state.termination;
  result->transport_cost = transport_cost;
  result->entropic_objective = transport_cost + plogp / problem.eta;
}

Status FinishSolve(OtBackend& backend, const Problem& problem, const Options& options,
                   const SolveState& state, Result* result) {
  *result = Result();
  double transport_cost = 0, plogp = 0;
  SOLVERD_RETURN_IF_ERROR(backend.PlanTotals(&transport_cost, &plogp));
  FillResultFigures(problem, state, transport_cost, plogp, result);
  SOLVERD_RETURN_IF_ERROR(backend.CopyPotentials(&result->x, &result->y));
  if (options.want_plan) SOLVERD_RETURN_IF_ERROR(backend.CopyPlan(&result->plan));
  if (options.sparse_plan_threshold > 0) {
    SOLVERD_RETURN_IF_ERROR(
        backend.CopySparsePlan(options.sparse_plan_threshold, &result->sparse_plan));
    SortSparsePlan(&result->sparse_plan);
  }
  return state.stop;
}

Status RunSinkhorn(OtBackend& backend, const Problem& problem, const Options& options,
                   ProgressSink* sink, const CancelToken* cancel, Result* result) {
  SolveState state;
  SOLVERD_RETURN_IF_ERROR(SinkhornStage(backend, problem, options, options.max_iterations,
                                        /*stop_on_stall=*/false, sink, cancel, &state));
  return FinishSolve(backend, problem, options, state, result);
}

}  // namespace solverd::ot::internal
