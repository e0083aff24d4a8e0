#include "ot/overrelaxation.h"

#include <algorithm>
#include <cmath>

namespace solverd::ot::internal {
namespace {

// Iterations a rate is read over, at least: over one window of 10 the
// error of an over-relaxed iteration swings too much (on W1 every other
// window grew).
constexpr int64_t kMinRateSpan = 20;
// Omega changes by at least this much, so that it settles.
constexpr double kMinOmegaStep = 0.02;
// Plain rates are taken as at most this (omega from it: kMaxOmega).
constexpr double kMaxPlainRate = 0.9999;
// After omega changes, rates are read from where the transient, which
// decays as (omega - 1)^k, has fallen to this share. Over bench/ot's cases
// and six more (W1 at eta = 50, random assignment at eta = 300, point
// clouds at other eta and tolerances), iterations in all: 0.05 3370,
// 0.02 2450, 0.01 2220, 0.005 2230, 0.002 2450; classic Sinkhorn 32860.
constexpr double kSettledShare = 0.01;

// Iterations for a change to omega to settle (kSettledShare).
int64_t SettleSpan(double omega) {
  if (omega <= 1) return 0;
  return static_cast<int64_t>(std::ceil(std::log(kSettledShare) / std::log(omega - 1)));
}

// h(s) = s - e^s + 1 <= 0: how far the dual objective is below its best
// over one potential whose row is at log(r / a) = s, in units of a / eta.
// A step from s to s' gains h(s') - h(s).
double Shortfall(double log_ratio) { return log_ratio - std::expm1(log_ratio); }

// Whether the relaxed step keeps kMinRelaxedGain of the plain step's gain.
bool KeepsGain(double log_ratio, double omega) {
  return Shortfall((1 - omega) * log_ratio) >= (1 - kMinRelaxedGain) * Shortfall(log_ratio);
}

// Young's rule: the plain rate behind `rate` measured at `omega`, and the
// omega that is best for it.
double BestOmega(double rate, double omega) {
  const double plain_rate = std::min(
      kMaxPlainRate, (rate + omega - 1) * (rate + omega - 1) / (rate * omega * omega));
  return std::min(kMaxOmega, 2 / (1 + std::sqrt(1 - plain_rate)));
}

}  // namespace

Relaxation RelaxationFor(double omega) {
  Relaxation relaxation;
  relaxation.omega = omega;
  if (omega == 1) return relaxation;
  // The steps that fail are exactly those below a point (rows over their
  // mass always gain): find it by bisection, from a bracket grown until
  // it fails (or no finite ratio fails).
  double lo = -1;
  while (KeepsGain(lo, omega)) {
    if (lo < -1e6) return relaxation;
    lo *= 2;
  }
  double hi = 0;  // keeps the gain at 0- for omega < 1.975
  for (int k = 0; k < 60; ++k) {
    const double mid = 0.5 * (lo + hi);
    (KeepsGain(mid, omega) ? hi : lo) = mid;
  }
  relaxation.min_log_ratio = hi;
  return relaxation;
}

void RelaxationTuner::BeginStage(double omega) {
  if (!started_) {
    started_ = true;
    tuned_ = omega == 0;
    Set(tuned_ ? 1 : omega);
  }
  reference_error_ = -1;
  settled_at_ = 0;
}

void RelaxationTuner::Set(double omega) { relaxation_ = RelaxationFor(omega); }

void RelaxationTuner::Observe(int64_t iteration, double error) {
  if (!tuned_) return;
  if (!(error > 0) || !std::isfinite(error)) return;
  if (reference_error_ < 0 || iteration < settled_at_) {
    reference_error_ = error;
    reference_iteration_ = iteration;
    return;
  }
  const double omega = relaxation_.omega;
  const int64_t span = iteration - reference_iteration_;
  if (span < std::max(kMinRateSpan, SettleSpan(omega))) return;
  const double rate = std::pow(error / reference_error_, 1.0 / static_cast<double>(span));
  reference_error_ = error;
  reference_iteration_ = iteration;
  if (!(rate < 1)) {
    if (omega > 1) Change(iteration, 1 + (omega - 1) / 2);
    return;
  }
  const double best = BestOmega(rate, omega);
  if (best >= omega + kMinOmegaStep) Change(iteration, best);
}

double RelaxationTuner::ExpectedIterations(double predicted, double window_omega) const {
  return tuned_ && window_omega == 1 ? kTunedShare * predicted : predicted;
}

void RelaxationTuner::Change(int64_t iteration, double omega) {
  Set(omega);
  settled_at_ = iteration + SettleSpan(omega);
}

}  // namespace solverd::ot::internal
