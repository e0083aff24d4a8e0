// How much a solve's Sinkhorn iterations over-relax (sinkhorn_math.h's
// Relaxation): a fixed omega, or one tuned from the errors they measure.
//
// Tuning follows Young's theory of SOR, as Lehmann et al. (Optim. Lett.
// 2022) suggest for Sinkhorn: an iteration that converges at rate lambda
// per step under omega has a plain rate mu^2 with (lambda + omega - 1)^2 =
// lambda omega^2 mu^2, and the best omega for it is 2 / (1 + sqrt(1 -
// mu^2)). The rate is read over at least kMinRateSpan iterations, from
// where the transient of the last change has settled (the error jumps
// while a new omega settles); omega only grows, by at least kMinOmegaStep,
// since early rates are faster than the asymptotic one; an error that
// grew halves omega - 1. On bench/ot's cases (CPU, iterations to the
// bench's tolerance, classic -> tuned -> best fixed omega of 1.5 / 1.8 /
// 1.9): W1 density 3740 -> 370 -> 290, W2 920 -> 140 -> 130, random
// assignment 21300 -> 850 -> 1450, point clouds n = 500 230 -> 70 -> 70.
// Thread-compatible: one per solve.
#ifndef SOLVERD_KERNELS_OT_OVERRELAXATION_H_
#define SOLVERD_KERNELS_OT_OVERRELAXATION_H_

#include <cstdint>

#include "ot/sinkhorn_math.h"

namespace solverd::ot::internal {

// Omega at most: beyond 1 + sqrt(1 - kMinRelaxedGain) (1.975) even the
// smallest relaxed steps would keep less than kMinRelaxedGain of the plain
// step's gain, and near 2 the iteration barely converges.
inline constexpr double kMaxOmega = 1.95;
// What share of classic Sinkhorn's iterations a tuned omega leaves: on
// bench/ot's point clouds 70 of 230, where Newton and Sinkhorn run close
// (elsewhere less: W2 0.15, W1 0.10, random assignment 0.04).
inline constexpr double kTunedShare = 0.3;
// A relaxed step keeps at least this share of what the plain step would
// have gained in the dual objective (the safeguard that makes every
// half-step an ascent step, so the iteration converges from anywhere).
inline constexpr double kMinRelaxedGain = 0.05;

// The Relaxation for `omega` in [1, kMaxOmega]: its min_log_ratio is the
// least log(r / a) at which the relaxed step keeps kMinRelaxedGain of the
// plain step's gain (rows with a sum far below their mass take the plain
// step: relaxed, they would overshoot by e^((omega - 1) |log(r / a)|)).
Relaxation RelaxationFor(double omega);

class RelaxationTuner {
 public:
  // At the start of each Sinkhorn stage of a solve: the first configures
  // it (`omega` 0 tunes, else it is fixed: Options::overrelaxation); later
  // stages keep omega, their rate read anew (a Newton step came between).
  void BeginStage(double omega);
  // For the next iteration.
  const Relaxation& relaxation() const { return relaxation_; }
  // The whole marginal error an iteration measured, `iteration` Sinkhorn
  // iterations into the solve.
  void Observe(int64_t iteration, double error);
  // How many iterations are expected to take the error to the tolerance,
  // where the rate over the last window, run at `window_omega`, predicts
  // `predicted`: tuned but still plain, kTunedShare of that.
  double ExpectedIterations(double predicted, double window_omega) const;

 private:
  void Set(double omega);
  // Sets omega at `iteration`, its rate read once it has settled.
  void Change(int64_t iteration, double omega);

  bool started_ = false;
  bool tuned_ = true;
  Relaxation relaxation_;
  double reference_error_ = -1;
  int64_t reference_iteration_ = 0;
  int64_t settled_at_ = 0;  // the first iteration past the last change's transient
};

}  // namespace solverd::ot::internal

#endif  // SOLVERD_KERNELS_OT_OVERRELAXATION_H_
