// Sinkhorn-Newton-Sparse (Tang et al., ICLR 2024), backend-independent.
//
// Stage 1 runs Sinkhorn steps. Stage 2 maximises the concave dual
//   f(x, y) = -(1/eta) sum_ij P_ij + a.x + b.y,   P_ij = exp(eta (x_i + y_j - C_ij) - 1)
// by Newton steps: grad f = (a - P1, b - P^T 1), Hessian
// -eta [[diag(P1), P], [P^T, diag(P^T 1)]]. The Hessian keeps its exact
// diagonal but only the highest-ranked entries of P off it (ranked by
// P_ij / sqrt(r_i c_j), a global threshold keeping about sparsity * n * m
// of them, kept for later steps while they still hold nearly all the
// mass; or all of P where that would keep a quarter of it or more); the
// dual variable of the heaviest column is fixed to
// remove the null direction (1, -1); the system, with a small diagonal
// shift, is solved by eliminating x and running conjugate gradient on the
// Schur complement in y, preconditioned by Jacobi and a coarse level on
// aggregates of columns (coarse_space.h); the step
// length comes from a backtracking Armijo search on f. When no step length
// increases f, a window of Sinkhorn steps runs instead; after a damped
// step (length < 1), Sinkhorn steps run for about as long as that step
// took, as counted in passes over the plan.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "ot/coarse_space.h"
#include "ot/driver_util.h"

namespace solverd::ot::internal {
namespace {

constexpr double kHistogramSpan = 60;  // entries below max P * e^-60 never matter
constexpr double kArmijo = 1e-4;
constexpr int kMaxHalvings = 40;
constexpr double kRelativeShift = 1e-10;
// Default sparsity: about this many entries of P per row. Two per row (the
// issue's first default) left Newton converging only linearly on random
// assignment (n = 500, eta = 1200: error 2.5e-4 after 80 steps); ten per
// row reaches 1e-10 in 7 steps there, like a dense Hessian.
constexpr double kDefaultEntriesPerRow = 10;
// The sparse Hessian also keeps enough entries that those dropped carry at
// most this share of P's mass: plans that are not nearly sparse (point
// clouds at moderate eta) need many entries per row for Newton to work
// (n = 500 points, eta = 100: 3604 Newton steps with ten per row, 3 with
// this rule; random assignment is unaffected).
constexpr double kDroppedMass = 1e-6;
// After a full step the last step's entries, their values recomputed,
// serve the next while those dropped carry at most this share of the mass:
// near the optimum the largest entries stay the largest, and recomputing
// the kept ones costs an exp each where choosing anew takes three passes
// over the plan. Ten times kDroppedMass: keeping entries for up to 1e-4
// took the same Newton steps on 500 x 500 point clouds (4), 1e-3 took 15.
// After damped steps the check failed (9 times in 9 on the W1 density
// case), so it is not tried there.
constexpr double kReusedDroppedMass = 1e-5;
// Where the rules above would keep this share of P's entries or more, the
// Newton systems take the whole plan instead (OtBackend::UseWholePlan()):
// on the CPU its products are passes over the cached kernel, about the
// cost of the sparse ones at this density (a kept entry costs about three
// of the kernel's), with no sparse matrix to build, transpose or refresh.
// Point clouds at moderate eta keep 30% (pot_n2000: the first
// sparsification took 16 ms, a refresh 2.5 ms, a Sinkhorn step 0.7 ms).
constexpr double kWholePlanShare = 0.25;
// Rows of P sampled to decide that: their share is within a few hundredths
// of the whole plan's.
constexpr int64_t kSampleRows = 128;
// Sinkhorn steps per pass of a damped Newton step over the plan (an
// evaluation, one of the sparsification's three passes' work, or products
// over as many sparse entries), for the window after it. On the CPU such
// a pass costs several Sinkhorn steps: it computes P (an exp per entry
// once the line search leaves the cached kernel's range) where a Sinkhorn
// step streams the kernel, and a sparse entry costs several dense ones.
// Measured on bench/ot's 28 x 28 densities (SNS, ms, W1 + W2, fastest of
// 9): 1 step per pass 90 + 33, 2: 81 + 42, 4: 91 + 38, 8: 75 + 38,
// 16: 92 + 36.
constexpr double kSinkhornStepsPerPass = 8;

// The relative residual CG solves a Newton system at `error` to:
// min(0.1, sqrt(error)) (Eisenstat and Walker's forcing term for
// superlinear convergence): far from the optimum a rough direction does,
// near it the solve tightens as the error falls. Against a fixed 1e-6 it
// took a few more Newton steps (W1 18 -> 22, W2 12 -> 15, point clouds one
// more, random assignment the same 8) of far fewer CG steps; SNS on
// bench/ot's cases: random assignment 6.9 -> 5.7 ms, W1 150 -> 116 ms, W2
// 41 -> 37 ms, pot_n500 17 -> 15 ms, pot_n2000 the same. (The error
// itself, up to 1e-2, did worse on W2: 44 ms.)
// What CG leaves of the residual is about what the step leaves of the
// error, forcing * error where the Newton model holds: where that alone
// would stop short of `tolerance`, but within kMaxTightening of it, the
// step aims at half the tolerance instead, a few CG steps more for a
// Newton step fewer (W2 5 -> 4 steps, pot_n2000 at eta = 20 2 -> 1; with
// the coarse level reused, pot_n2000 3 steps where it took 4 without).
constexpr double kMaxTightening = 10;
double ForcingTerm(double error, double tolerance) {
  const double forcing = std::min(0.1, std::sqrt(error));
  const double reaching = tolerance / error;
  return forcing > reaching && kMaxTightening * reaching >= forcing ? reaching / 2 : forcing;
}

// The sparsification's histogram of ranks (OtBackend::LogPlanHistogram()),
// over every row or a sample of them.
class Histogram {
 public:
  Status Measure(OtBackend& backend, const PlanRanking& ranking, int64_t row_stride) {
    return backend.LogPlanHistogram(ranking, kLo, kHi, row_stride, &counts_, &masses_);
  }
  double Mass() const { return std::accumulate(masses_.begin(), masses_.end(), 0.0); }
  // The rank threshold that keeps at least `keep` entries and all but
  // kDroppedMass of `total`, at a bin's edge.
  double Threshold(double keep, double total) const {
    const int bins = static_cast<int>(counts_.size());
    int bin = bins - 1;
    for (double kept = 0, mass = 0; bin > 0; --bin) {
      kept += counts_[bin];
      mass += masses_[bin];
      if (kept >= keep && mass >= (1 - kDroppedMass) * total) break;
    }
    return kLo + (kHi - kLo) * bin / bins;
  }
  // How many entries rank at or above `threshold` (a bin's edge).
  int64_t KeptAbove(double threshold) const {
    const int bins = static_cast<int>(counts_.size());
    const int first = static_cast<int>(std::lround((threshold - kLo) / (kHi - kLo) * bins));
    int64_t kept = 0;
    for (int k = std::max(0, first); k < bins; ++k) kept += counts_[k];
    return kept;
  }

 private:
  // Ranks are at most 0 (P_ij <= min(r_i, c_j)) but for rounding.
  static constexpr double kHi = 1e-9, kLo = kHi - kHistogramSpan;
  std::vector<int64_t> counts_;
  std::vector<double> masses_;
};

// A point of the dual and what the backend measured there.
struct DualPoint {
  std::vector<double> x, y;  // potentials
  std::vector<double> r, c;  // P1, P^T 1
  double f = 0;              // the dual objective
  double error = 0;          // ||r - a||_1 + ||c - b||_1
};

class NewtonStage {
 public:
  NewtonStage(OtBackend& backend, const Problem& p, const Options& o)
      : backend_(backend), p_(p), o_(o) {
    // Zero-mass rows and columns stay at -inf and out of the system; the
    // heaviest column (the last of them, as before when all weigh the same)
    // is fixed to remove the null direction (1, -1). Fixing a light one
    // leaves the system nearly singular along that direction: with the last
    // column (mass 1.6e-5 where the largest is 7e-3) the 28 x 28 W2 density
    // case converged linearly, 3x a step from an error of 1e-4, in 16
    // Newton steps; fixing the heaviest, 10.
    for (int64_t j = 0; j < p.m; ++j) {
      if (p.b[j] > 0 && (fixed_column_ < 0 || p.b[j] >= p.b[fixed_column_])) fixed_column_ = j;
    }
  }

  Status Run(ProgressSink* sink, const CancelToken* cancel, SolveState* state) {
    StageClock clock(&state->newton_seconds, &state->sinkhorn_seconds);
    cg_seconds_ = &state->cg_seconds;
    SOLVERD_RETURN_IF_ERROR(backend_.CopyPotentials(&point_.x, &point_.y));
    for (int64_t i = 0; i < p_.n; ++i) {
      if (p_.a[i] <= 0) point_.x[i] = -INFINITY;
    }
    for (int64_t j = 0; j < p_.m; ++j) {
      if (p_.b[j] <= 0) point_.y[j] = -INFINITY;
    }
    SOLVERD_RETURN_IF_ERROR(Evaluate(&point_));
    for (;;) {
      state->error = point_.error;
      state->error_current = true;
      if (state->first_error < 0) state->first_error = point_.error;
      ReportProgress(sink, state, o_, "newton");
      if (CheckLimits(o_, cancel, state)) break;
      double step = 0;
      work_ = StepWork();
      SOLVERD_RETURN_IF_ERROR(NewtonStep(&step));
      last_step_full_ = step == 1;
      if (step > 0) {
        ++state->newton_iterations;
        if (step < 1) {
          SOLVERD_RETURN_IF_ERROR(SinkhornWindow(sink, cancel, state));
          if (state->finished) return Status::Ok();
        }
        continue;
      }
      // No step length increased f: fall back to a window of Sinkhorn steps.
      SOLVERD_RETURN_IF_ERROR(backend_.SetPotentials(point_.x, point_.y));
      const int window = std::max(1, o_.check_every);
      SOLVERD_RETURN_IF_ERROR(SinkhornStage(backend_, p_, o_, window, false, sink, cancel, state));
      if (state->finished) return Status::Ok();
      SOLVERD_RETURN_IF_ERROR(backend_.CopyPotentials(&point_.x, &point_.y));
      SOLVERD_RETURN_IF_ERROR(Evaluate(&point_));
    }
    // Leave the backend at the point we report.
    return backend_.SetPotentials(point_.x, point_.y);
  }

 private:
  // What a Newton step did, for the Sinkhorn window after a damped one.
  struct StepWork {
    int64_t plan_passes = 0;      // passes over the whole plan: evaluations, sparsification
    int64_t sparse_products = 0;  // products with the sparse plan: CG, refresh
    // The step's cost in passes over the whole plan.
    double Passes(int64_t kept, int64_t entries) const {
      return static_cast<double>(plan_passes) +
             static_cast<double>(sparse_products) * static_cast<double>(kept) /
                 static_cast<double>(std::max<int64_t>(1, entries));
    }
  };

  // Sinkhorn steps from the current point, about as many as the damped
  // Newton step before them cost. While Newton steps are damped (far from
  // the optimum, where the sparsified Hessian is a poor model) each gains
  // little, and on the 28 x 28 density cases a damped step cost 40-130
  // Sinkhorn steps' time: with one Sinkhorn step after each (what ran
  // before) W1 took 8 damped and 14 full Newton steps; with these windows
  // it takes 11 Newton steps in all and 25% less time. Whichever of the
  // two gains more per second, the time spent on the other is at most
  // about as much again. The window is counted in passes, not timed, so
  // that a solve takes the same path every time (a batch's problem as the
  // same problem alone). Ends with point_ at the window's potentials,
  // evaluated, unless the solve finished.
  Status SinkhornWindow(ProgressSink* sink, const CancelToken* cancel, SolveState* state) {
    const double passes = work_.Passes(kept_, p_.n * p_.m);
    const int64_t steps = std::clamp<int64_t>(std::llround(kSinkhornStepsPerPass * passes), 1,
                                              std::max<int64_t>(1, o_.max_iterations));
    SOLVERD_RETURN_IF_ERROR(backend_.SetPotentials(point_.x, point_.y));
    SOLVERD_RETURN_IF_ERROR(SinkhornStage(backend_, p_, o_, steps, false, sink, cancel, state));
    if (state->finished) return Status::Ok();
    SOLVERD_RETURN_IF_ERROR(backend_.CopyPotentials(&point_.x, &point_.y));
    return Evaluate(&point_);
  }

  // Measures r, c, f and the error at point->x, point->y.
  Status Evaluate(DualPoint* point) {
    ++work_.plan_passes;
    SOLVERD_RETURN_IF_ERROR(backend_.SetPotentials(point->x, point->y));
    double total = 0;
    SOLVERD_RETURN_IF_ERROR(backend_.PlanMarginals(&point->r, &point->c, &total));
    double f = -total / p_.eta;
    for (int64_t i = 0; i < p_.n; ++i) {
      if (p_.a[i] > 0) f += p_.a[i] * point->x[i];
    }
    for (int64_t j = 0; j < p_.m; ++j) {
      if (p_.b[j] > 0) f += p_.b[j] * point->y[j];
    }
    point->f = std::isnan(f) ? -INFINITY : f;
    point->error = MarginalError(p_, point->r, point->c);
    return Status::Ok();
  }

  // Keeps the highest-ranked entries of P (RankEntries()): at least
  // sparsity * n * m of them, and enough that the dropped ones carry at
  // most kDroppedMass of P's mass; or, after a full step, the last step's
  // entries while they drop at most kReusedDroppedMass.
  Status Sparsify() {
    if (whole_plan_) {
      ++work_.plan_passes;  // on the CPU at most a kernel rebuild
      return backend_.RefreshSparsePlan(nullptr);
    }
    const double lambda = o_.sparsity > 0 ? o_.sparsity : kDefaultEntriesPerRow / p_.n;
    const double keep = std::max<double>(p_.n + p_.m, lambda * p_.n * p_.m);
    double total = 0;
    for (double v : point_.r) total += v;
    if (sparsified_ && last_step_full_) {
      double kept_mass = 0;
      ++work_.sparse_products;
      SOLVERD_RETURN_IF_ERROR(backend_.RefreshSparsePlan(&kept_mass));
      if (total - kept_mass <= kReusedDroppedMass * total) return Status::Ok();
    }
    sparsified_ = true;
    const PlanRanking ranking = RankEntries();
    // A sample of rows first: where the rule would keep kWholePlanShare of
    // the entries or more, the whole plan serves and no full pass is due.
    const int64_t stride = std::max<int64_t>(1, p_.n / kSampleRows);
    const int64_t sampled_rows = (p_.n + stride - 1) / stride;
    Histogram sample;
    SOLVERD_RETURN_IF_ERROR(sample.Measure(backend_, ranking, stride));
    const int64_t sample_kept = sample.KeptAbove(sample.Threshold(
        keep * sampled_rows / p_.n, sample.Mass()));
    if (sample_kept >= kWholePlanShare * sampled_rows * p_.m) {
      SOLVERD_RETURN_IF_ERROR(backend_.UseWholePlan(&whole_plan_));
      if (whole_plan_) {
        kept_ = p_.n * p_.m;
        return Status::Ok();
      }
    }
    Histogram full;
    if (stride > 1) SOLVERD_RETURN_IF_ERROR(full.Measure(backend_, ranking, 1));
    const Histogram& histogram = stride > 1 ? full : sample;
    // The histogram, then the build: one pass, but computing log P and P
    // for every row, about two passes' work.
    work_.plan_passes += 3;
    return backend_.SparsifyPlan(ranking, histogram.Threshold(keep, total), &kept_);
  }

  // Ranks P's entries as those of diag(r)^-1/2 P diag(c)^-1/2, the Hessian
  // scaled to a unit diagonal, where an entry's weight in the Newton step
  // shows: ranked by P_ij alone, a threshold drops nearly every entry of
  // light rows and columns (the densities' tails, 1e-10 of the heaviest's
  // mass), whose part of the step is then far off. On the 28 x 28 density
  // cases, with the heaviest column fixed: W2 6 Newton steps instead of 10
  // (converging quadratically where it had converged linearly from 1e-7),
  // W1 8 instead of 14; the same steps on random assignment and point
  // clouds.
  PlanRanking RankEntries() const {
    const auto half_log = [](double sum) {
      return sum > 0 && std::isfinite(sum) ? 0.5 * std::log(sum) : 0.0;
    };
    PlanRanking ranking;
    ranking.row.resize(p_.n);
    ranking.col.resize(p_.m);
    std::transform(point_.r.begin(), point_.r.end(), ranking.row.begin(), half_log);
    std::transform(point_.c.begin(), point_.c.end(), ranking.col.begin(), half_log);
    return ranking;
  }

  bool RowActive(int64_t i) const { return p_.a[i] > 0; }
  bool ColumnActive(int64_t j) const { return p_.b[j] > 0 && j != fixed_column_; }

  // pv = Ps v, counted as a product.
  Status PlanTimes(const std::vector<double>& v, std::vector<double>* pv) {
    ++work_.sparse_products;
    return backend_.SparseMultiply(/*transpose=*/false, v, pv);
  }

  // Solves M (dx, dy) = (gx, gy) / eta for the approximate Hessian
  // M = [[Dr, Ps], [Ps^T, Dc]] (D* with the shift). Eliminating dx leaves
  // S dy = rhs with S = Dc - Ps^T Dr^-1 Ps on the active columns, solved by
  // CG preconditioned with diag(S): when P is close to a permutation, M
  // itself is very ill-conditioned (every matched pair is a near-null
  // direction) but diag(S)^-1 S stays close to the identity. Where P is
  // spread (point clouds at moderate eta), S is Laplacian-like and a
  // coarse level on aggregates of columns takes its smooth modes
  // (coarse_space.h).
  Status SolveNewtonSystem(const std::vector<double>& gx, const std::vector<double>& gy,
                           std::vector<double>* dx, std::vector<double>* dy) {
    std::vector<double> bx;
    SOLVERD_RETURN_IF_ERROR(SetUpSchurSystem(gx, gy, &bx));
    int64_t cg_iterations = 0;
    std::vector<double> pdy;
    {
      StageClock clock(cg_seconds_);
      SOLVERD_RETURN_IF_ERROR(backend_.SolveSchur(schur_, dy, &cg_iterations, &pdy));
    }
    work_.sparse_products += 2 * cg_iterations;
    // Ps dy: tracked by the host CG (a pass over the whole plan saved, on
    // the CPU 3 ms a Newton step at n = 5000), else one product more;
    // counted either way, so that the CPU and CUDA windows agree.
    if (pdy.empty()) {
      SOLVERD_RETURN_IF_ERROR(PlanTimes(*dy, &pdy));
    } else {
      ++work_.sparse_products;
    }
    dx->resize(p_.n);
    for (int64_t i = 0; i < p_.n; ++i) (*dx)[i] = (bx[i] - pdy[i]) * schur_.inv_dr[i];
    return Status::Ok();
  }

  // schur_ for the system of SolveNewtonSystem(), and bx = gx / eta on the
  // active rows.
  Status SetUpSchurSystem(const std::vector<double>& gx, const std::vector<double>& gy,
                          std::vector<double>* bx) {
    double max_diag = 0;
    for (double v : point_.r) max_diag = std::max(max_diag, v);
    for (double v : point_.c) max_diag = std::max(max_diag, v);
    const double shift = kRelativeShift * max_diag;
    SchurSystem& s = schur_;
    s.inv_dr.resize(p_.n);
    bx->resize(p_.n);
    std::vector<double> scaled(p_.n), back, squares;
    for (int64_t i = 0; i < p_.n; ++i) {
      s.inv_dr[i] = RowActive(i) ? 1.0 / (point_.r[i] + shift) : 0.0;
      (*bx)[i] = RowActive(i) ? gx[i] / p_.eta : 0.0;
      scaled[i] = (*bx)[i] * s.inv_dr[i];
    }
    s.active.resize(p_.m);
    for (int64_t j = 0; j < p_.m; ++j) s.active[j] = ColumnActive(j) ? 1.0 : 0.0;
    // The coarse level's aggregates, then one call for Ps^T of the scaled
    // right-hand side, diag(S)'s sums and the aggregates' sums: on the
    // CPU's whole plan one pass over the kernel, whose rows the group sums
    // gather from while the column sums have them in cache. After a full
    // step the last step's coarse level (aggregates and (R S R^T)^-1)
    // serves as it is: near the optimum the plan moves little and a
    // preconditioner need not be exact, while building it anew costs the
    // seeds' pass, the gathered group sums and the factorization, most of
    // the setup. CG steps per Newton step on pot_n500 4, 3, 5, 8 -> 4, 3,
    // 4, 8; a Newton step at n = 500 / 2000 / 5000 11.9 / 6.6 / 6.5 ->
    // 8.7 / 6.1 / 5.6 Sinkhorn iterations (dev VM, best of 3 x 10 solves).
    const bool reuse_coarse = last_step_full_ && s.coarse.size > 0;
    int groups = 0;
    if (!reuse_coarse) {
      SOLVERD_RETURN_IF_ERROR(coarse_builder_.Aggregate(backend_, kept_, &s, &groups));
    }
    SOLVERD_RETURN_IF_ERROR(backend_.SparseSchurSetup(scaled, s.inv_dr, s.coarse.aggregate,
                                                      groups, &back, &squares,
                                                      coarse_builder_.row_sums()));
    // Counted as the products apart: the seeds' pass, Ps^T w, the column
    // squares, the aggregates' sums.
    work_.sparse_products += groups > 0 ? 4 : 2;
    s.dc.resize(p_.m);
    s.rhs.resize(p_.m);
    s.inv_diag.resize(p_.m);
    for (int64_t j = 0; j < p_.m; ++j) {
      const bool active = s.active[j] != 0;
      s.dc[j] = point_.c[j] + shift;
      s.rhs[j] = active ? gy[j] / p_.eta - back[j] : 0.0;
      const double diag = s.dc[j] - squares[j];
      s.inv_diag[j] = active && diag > 0 ? 1.0 / diag : 0.0;
    }
    s.relative_target = std::max(1e-12, ForcingTerm(point_.error, o_.tolerance));
    s.max_iterations = o_.cg_max_iterations;
    if (!reuse_coarse) coarse_builder_.Finish(groups, &s);
    return Status::Ok();
  }

  // One damped Newton step; *step is the step length taken, 0 when none
  // helped.
  Status NewtonStep(double* step) {
    *step = 0;
    SOLVERD_RETURN_IF_ERROR(Sparsify());
    std::vector<double> gx(p_.n), gy(p_.m), dx, dy;
    for (int64_t i = 0; i < p_.n; ++i) gx[i] = p_.a[i] - point_.r[i];
    for (int64_t j = 0; j < p_.m; ++j) gy[j] = p_.b[j] - point_.c[j];
    SOLVERD_RETURN_IF_ERROR(SolveNewtonSystem(gx, gy, &dx, &dy));
    double slope = 0;
    for (int64_t i = 0; i < p_.n; ++i) slope += RowActive(i) ? gx[i] * dx[i] : 0.0;
    for (int64_t j = 0; j < p_.m; ++j) slope += ColumnActive(j) ? gy[j] * dy[j] : 0.0;
    if (!(slope > 0)) return Status::Ok();
    // f differences near the optimum fall below rounding; a step that keeps
    // f within rounding and shrinks the error is taken too.
    const double noise = 1e-13 * (std::fabs(point_.f) + 1);
    DualPoint trial;
    double alpha = 1;
    for (int h = 0; h < kMaxHalvings; ++h, alpha /= 2) {
      trial.x = point_.x;
      trial.y = point_.y;
      for (int64_t i = 0; i < p_.n; ++i) {
        if (RowActive(i)) trial.x[i] += alpha * dx[i];
      }
      for (int64_t j = 0; j < p_.m; ++j) {
        if (ColumnActive(j)) trial.y[j] += alpha * dy[j];
      }
      SOLVERD_RETURN_IF_ERROR(Evaluate(&trial));
      const bool armijo = trial.f >= point_.f + kArmijo * alpha * slope;
      const bool flat_but_better = trial.f >= point_.f - noise && trial.error < point_.error;
      if (armijo || flat_but_better) {
        point_ = std::move(trial);
        *step = alpha;
        return Status::Ok();
      }
    }
    return Status::Ok();
  }

  OtBackend& backend_;
  const Problem& p_;
  const Options& o_;
  int64_t fixed_column_ = -1;
  bool sparsified_ = false;      // the backend holds a sparse plan
  bool whole_plan_ = false;      // which is all of P (UseWholePlan())
  bool last_step_full_ = false;  // the last Newton step had length 1
  DualPoint point_;
  SchurSystem schur_;  // of the Newton step under way
  CoarseSpaceBuilder coarse_builder_;
  double* cg_seconds_ = nullptr;  // SolveState::cg_seconds of the solve
  int64_t kept_ = 0;               // entries in the backend's sparse plan
  StepWork work_;                  // of the Newton step under way
};

}  // namespace

Status FinishSns(OtBackend& backend, const Problem& problem, const Options& options,
                 ProgressSink* sink, const CancelToken* cancel, SolveState* state,
                 Result* result) {
  if (!state->finished) {
    NewtonStage newton(backend, problem, options);
    SOLVERD_RETURN_IF_ERROR(newton.Run(sink, cancel, state));
  }
  return FinishSolve(backend, problem, options, *state, result);
}

Status RunSns(OtBackend& backend, const Problem& problem, const Options& options,
              ProgressSink* sink, const CancelToken* cancel, Result* result) {
  SolveState state;
  const bool auto_switch = options.method == Method::kAuto;
  SOLVERD_RETURN_IF_ERROR(SinkhornStage(backend, problem, options, SinkhornStageSteps(options),
                                        auto_switch, sink, cancel, &state));
  return FinishSns(backend, problem, options, sink, cancel, &state, result);
}

}  // namespace solverd::ot::internal
