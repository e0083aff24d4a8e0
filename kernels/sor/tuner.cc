#include "sor/tuner.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <utility>

#include "sor/tuner_algorithms.h"

namespace solverd::sor {
namespace {

std::vector<double> DefaultGrid() {
  std::vector<double> grid(20);
  for (int i = 0; i < 20; ++i) grid[i] = 1.0 + 0.95 * i / 19;
  return grid;
}

Status ValidateConfig(const TunerConfig& c) {
  for (size_t i = 0; i < c.grid.size(); ++i) {
    if (!(c.grid[i] > 0 && c.grid[i] < 2)) {
      return InvalidArgument("grid: omega " + std::to_string(c.grid[i]) + " at index " +
                             std::to_string(i) + " is outside (0, 2)");
    }
  }
  if (c.grid.size() > 1000) return InvalidArgument("grid: at most 1000 omegas");
  if (c.algorithm == TunerAlgorithm::kFixed && !(c.fixed_omega > 0 && c.fixed_omega < 2)) {
    return InvalidArgument("fixed_omega: must lie in (0, 2)");
  }
  if (!(c.context_max > c.context_min) || !std::isfinite(c.context_min) ||
      !std::isfinite(c.context_max)) {
    return InvalidArgument("context_max: must be finite and above context_min");
  }
  if (c.context_bins < 1 || c.context_bins > 1000) {
    return InvalidArgument("context_bins: must lie in [1, 1000]");
  }
  if (c.chebyshev_terms < 1 || c.chebyshev_terms > 16) {
    return InvalidArgument("chebyshev_terms: must lie in [1, 16]");
  }
  return Status::Ok();
}

}  // namespace

Status Tuner::Create(const TunerConfig& config, std::unique_ptr<Tuner>* tuner) {
  TunerConfig c = config;
  if (c.algorithm == TunerAlgorithm::kFixed) {
    c.grid = {c.fixed_omega};
  } else if (c.grid.empty()) {
    c.grid = DefaultGrid();
  }
  SOLVERD_RETURN_IF_ERROR(ValidateConfig(c));
  *tuner = internal::MakeTuner(c);
  return Status::Ok();
}

Tuner::Tuner(const TunerConfig& config)
    : config_(config), rng_(config.seed), arms_(config.grid.size()) {
  for (size_t i = 0; i < arms_.size(); ++i) arms_[i].omega = config_.grid[i];
  last_probabilities_.assign(arms_.size(), 1.0 / arms_.size());
}

double Tuner::UnitContext(double context) const {
  const double unit = 2 * (context - config_.context_min) /
                      (config_.context_max - config_.context_min) - 1;
  return std::isfinite(unit) ? std::clamp(unit, -1.0, 1.0) : 0.0;
}

int Tuner::Choose(double context) {
  std::lock_guard<std::mutex> lock(mu_);
  if (arms_.size() == 1) return 0;
  std::vector<double> p = Probabilities(context);
  last_probabilities_ = p;
  // Inverse-CDF sampling on our own uniform draw: the same seed gives the
  // same choices with any standard library.
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
  double total = 0;
  for (double v : p) total += v;
  double acc = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    acc += p[i] / total;
    if (u < acc) return static_cast<int>(i);
  }
  return static_cast<int>(p.size()) - 1;
}

void Tuner::Observe(int arm, double context, int64_t iterations) {
  std::lock_guard<std::mutex> lock(mu_);
  if (arm < 0 || arm >= static_cast<int>(arms_.size())) return;
  const double probability = std::max(last_probabilities_[arm], 1e-12);
  ObserveLocked(arm, context, iterations, probability);
  if (recording_) recorded_.push_back({arm, context, {iterations}, probability});
}

void Tuner::ObserveLocked(int arm, double context, int64_t iterations, double probability) {
  ArmState& a = arms_[arm];
  ++a.plays;
  a.mean_iterations += (iterations - a.mean_iterations) / a.plays;
  ++systems_;
  total_iterations_ += iterations;
  const double cost = std::max<double>(0, iterations - 1);
  // Learn against the mean cost of the systems before this one, so the
  // baseline an algorithm may subtract does not depend on this outcome.
  Learn(arm, context, cost, probability);
  cost_sum_ += cost;
  cost_scale_ = std::max(1.0, cost_sum_ / systems_);
}

void Tuner::ObserveAll(double context, const std::vector<int64_t>& iterations) {
  std::lock_guard<std::mutex> lock(mu_);
  if (iterations.size() != arms_.size()) return;
  ObserveAllLocked(context, iterations);
  if (recording_) recorded_.push_back({-1, context, iterations, 1});
}

void Tuner::ObserveAllLocked(double context, const std::vector<int64_t>& iterations) {
  for (size_t i = 0; i < arms_.size(); ++i) {
    ArmState& a = arms_[i];
    ++a.plays;
    a.mean_iterations += (iterations[i] - a.mean_iterations) / a.plays;
  }
  ++systems_;
  total_iterations_ += *std::min_element(iterations.begin(), iterations.end());
  (void)context;
}

void Tuner::RecordObservations() {
  std::lock_guard<std::mutex> lock(mu_);
  recording_ = true;
}

std::vector<TunerObservation> Tuner::TakeObservations() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(recorded_, {});
}

void Tuner::Replay(const std::vector<TunerObservation>& observations) {
  std::lock_guard<std::mutex> lock(mu_);
  const int k = static_cast<int>(arms_.size());
  for (const TunerObservation& o : observations) {
    if (o.arm == -1 && static_cast<int>(o.iterations.size()) == k) {
      ObserveAllLocked(o.context, o.iterations);
    } else if (o.arm >= 0 && o.arm < k && o.iterations.size() == 1) {
      // As Choose() would have: an algorithm keeps what it predicted for
      // this context, and learns against it.
      last_probabilities_ = Probabilities(o.context);
      ObserveLocked(o.arm, o.context, o.iterations[0], std::max(o.probability, 1e-12));
    }
  }
}

TunerSnapshot Tuner::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  TunerSnapshot s;
  s.systems = systems_;
  s.total_iterations = total_iterations_;
  s.arms = arms_;
  for (size_t i = 0; i < s.arms.size(); ++i) s.arms[i].probability = last_probabilities_[i];
  return s;
}

TunerCheckpoint Tuner::Checkpoint() const {
  std::lock_guard<std::mutex> lock(mu_);
  TunerCheckpoint c;
  c.systems = systems_;
  c.total_iterations = total_iterations_;
  c.cost_sum = cost_sum_;
  std::ostringstream rng;
  rng << rng_;
  c.rng = rng.str();
  c.arms = arms_;
  c.last_probabilities = last_probabilities_;
  c.learner = LearnerState();
  return c;
}

Status Tuner::Restore(const TunerCheckpoint& c) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t k = arms_.size();
  if (c.arms.size() != k || c.last_probabilities.size() != k || c.systems < 0) {
    return InvalidArgument("checkpoint: made for a tuner with " + std::to_string(c.arms.size()) +
                           " omegas, this one has " + std::to_string(k));
  }
  std::mt19937_64 rng;
  std::istringstream in(c.rng);
  in >> rng;
  if (in.fail()) return InvalidArgument("checkpoint: bad generator state");
  const std::vector<double> previous = LearnerState();
  if (!RestoreLearnerState(c.learner)) {
    RestoreLearnerState(previous);
    return InvalidArgument("checkpoint: learner state does not fit this algorithm");
  }
  rng_ = rng;
  for (size_t i = 0; i < k; ++i) {
    arms_[i].plays = c.arms[i].plays;
    arms_[i].mean_iterations = c.arms[i].mean_iterations;
  }
  last_probabilities_ = c.last_probabilities;
  systems_ = c.systems;
  total_iterations_ = c.total_iterations;
  cost_sum_ = c.cost_sum;
  cost_scale_ = systems_ > 0 ? std::max(1.0, cost_sum_ / systems_) : 1.0;
  return Status::Ok();
}

const char* TunerAlgorithmName(TunerAlgorithm algorithm) {
  switch (algorithm) {
    case TunerAlgorithm::kFixed: return "fixed";
    case TunerAlgorithm::kGridOracle: return "grid-oracle";
    case TunerAlgorithm::kTsallisInf: return "tsallis-inf";
    case TunerAlgorithm::kTsallisInfCb: return "tsallis-inf-cb";
    case TunerAlgorithm::kChebCb: return "chebcb";
  }
  return "fixed";
}

bool ParseTunerAlgorithm(const std::string& name, TunerAlgorithm* algorithm) {
  for (TunerAlgorithm a : {TunerAlgorithm::kFixed, TunerAlgorithm::kGridOracle,
                           TunerAlgorithm::kTsallisInf, TunerAlgorithm::kTsallisInfCb,
                           TunerAlgorithm::kChebCb}) {
    if (name == TunerAlgorithmName(a)) {
      *algorithm = a;
      return true;
    }
  }
  return false;
}

}  // namespace solverd::sor
