#include "sor/tuner_algorithms.h"

#include <algorithm>
#include <cmath>

namespace solverd::sor::internal {
namespace {

class UniformTuner final : public Tuner {  // kFixed (one arm) and kGridOracle
 public:
  explicit UniformTuner(const TunerConfig& config) : Tuner(config) {}

 protected:
  std::vector<double> Probabilities(double) override {
    return std::vector<double>(grid().size(), 1.0 / grid().size());
  }
  void Learn(int, double, double, double) override {}
  std::vector<double> LearnerState() const override { return {}; }
  bool RestoreLearnerState(const std::vector<double>& state) override { return state.empty(); }
};

// Tsallis-INF with the anytime rate eta_t = 2 / sqrt(t), one independent
// copy per context bin (a single bin: the non-contextual algorithm). Losses
// are iterations - 1 over their running mean, estimated with the mean as a
// baseline (measured on bench/sor synthetic_low: 9% above best-fixed
// instead of 16%).
class TsallisInfTuner final : public Tuner {
 public:
  explicit TsallisInfTuner(const TunerConfig& config)
      : Tuner(config),
        bins_(config.algorithm == TunerAlgorithm::kTsallisInfCb ? config.context_bins : 1,
              Bin{std::vector<double>(config.grid.size(), 0.0), 1}) {}

 protected:
  std::vector<double> Probabilities(double context) override {
    const Bin& bin = bins_[BinOf(context)];
    std::vector<double> losses(bin.cumulative_cost.size());
    for (size_t i = 0; i < losses.size(); ++i) losses[i] = bin.cumulative_cost[i] / cost_scale();
    return TsallisProbabilities(losses, 2.0 / std::sqrt(static_cast<double>(bin.t)));
  }
  void Learn(int arm, double context, double cost, double probability) override {
    Bin& bin = bins_[BinOf(context)];
    // Importance-weighted, relative to the mean cost so far: subtracting a
    // baseline b from every arm's loss leaves the distribution unchanged
    // but shrinks the estimate's variance from ~cost^2/p to ~(cost-b)^2/p.
    bin.cumulative_cost[arm] += (cost - cost_scale()) / probability;
    ++bin.t;
  }
  // Per bin: t, then the cumulative cost of every arm.
  std::vector<double> LearnerState() const override {
    std::vector<double> state;
    for (const Bin& bin : bins_) {
      state.push_back(static_cast<double>(bin.t));
      state.insert(state.end(), bin.cumulative_cost.begin(), bin.cumulative_cost.end());
    }
    return state;
  }
  bool RestoreLearnerState(const std::vector<double>& state) override {
    const size_t k = bins_.front().cumulative_cost.size();
    if (state.size() != bins_.size() * (k + 1)) return false;
    for (size_t b = 0; b < bins_.size(); ++b) {
      const double* at = state.data() + b * (k + 1);
      if (!(at[0] >= 1)) return false;
      bins_[b].t = static_cast<int64_t>(at[0]);
      bins_[b].cumulative_cost.assign(at + 1, at + 1 + k);
    }
    return true;
  }

 private:
  struct Bin {
    std::vector<double> cumulative_cost;
    int64_t t;
  };
  size_t BinOf(double context) const {
    const double unit = (UnitContext(context) + 1) / 2;
    return std::min(bins_.size() - 1, static_cast<size_t>(unit * bins_.size()));
  }
  std::vector<Bin> bins_;
};

// Solves (G + ridge I) theta = h for small symmetric positive definite G by
// Cholesky; G is m x m row-major.
std::vector<double> RidgeSolve(std::vector<double> g, std::vector<double> h, int m, double ridge) {
  for (int i = 0; i < m; ++i) g[i * m + i] += ridge;
  for (int j = 0; j < m; ++j) {
    double d = g[j * m + j];
    for (int k = 0; k < j; ++k) d -= g[j * m + k] * g[j * m + k];
    d = std::sqrt(std::max(d, 1e-300));
    g[j * m + j] = d;
    for (int i = j + 1; i < m; ++i) {
      double s = g[i * m + j];
      for (int k = 0; k < j; ++k) s -= g[i * m + k] * g[j * m + k];
      g[i * m + j] = s / d;
    }
  }
  for (int i = 0; i < m; ++i) {  // L y = h
    for (int k = 0; k < i; ++k) h[i] -= g[i * m + k] * h[k];
    h[i] /= g[i * m + i];
  }
  for (int i = m - 1; i >= 0; --i) {  // L^T theta = y
    for (int k = i + 1; k < m; ++k) h[i] -= g[k * m + i] * h[k];
    h[i] /= g[i * m + i];
  }
  return h;
}

// ChebCB: each arm's normalised cost is a least-squares fit on Chebyshev
// features of the context; arms are sampled by inverse gap weighting,
// p_i = 1 / (K + eta (s_i - s_min)), with eta growing about linearly in t
// at a rate set by the fit's squared prediction error so far.
class ChebCbTuner final : public Tuner {
 public:
  explicit ChebCbTuner(const TunerConfig& config)
      : Tuner(config), terms_(config.chebyshev_terms),
        fits_(config.grid.size(), Fit{std::vector<double>(terms_ * terms_, 0.0),
                                      std::vector<double>(terms_, 0.0)}),
        predicted_(config.grid.size(), 0.0) {}

 protected:
  std::vector<double> Probabilities(double context) override {
    features_ = ChebyshevFeatures(UnitContext(context), terms_);
    const size_t k = fits_.size();
    size_t best = 0;
    for (size_t i = 0; i < k; ++i) {
      const std::vector<double> theta = RidgeSolve(fits_[i].gram, fits_[i].moment, terms_, kRidge);
      double s = 0;
      for (int j = 0; j < terms_; ++j) s += theta[j] * features_[j];
      predicted_[i] = s / cost_scale();
      if (predicted_[i] < predicted_[best]) best = i;
    }
    std::vector<double> p(k, 0.0);
    double others = 0;
    for (size_t i = 0; i < k; ++i) {
      if (i == best) continue;
      p[i] = 1.0 / (k + eta_ * (predicted_[i] - predicted_[best]));
      others += p[i];
    }
    p[best] = std::max(0.0, 1.0 - others);
    return p;
  }
  void Learn(int arm, double, double cost, double) override {
    Fit& fit = fits_[arm];
    for (int i = 0; i < terms_; ++i) {
      fit.moment[i] += features_[i] * cost;
      for (int j = 0; j < terms_; ++j) fit.gram[i * terms_ + j] += features_[i] * features_[j];
    }
    const double error = predicted_[arm] - cost / cost_scale();
    squared_error_ += error * error;
    const double t = static_cast<double>(++t_);
    eta_ = 2 * t * std::sqrt(fits_.size() * t / (squared_error_ + kErrorFloor * t));
  }
  // eta, squared error, t, then per arm its Gram matrix and moment vector.
  std::vector<double> LearnerState() const override {
    std::vector<double> state = {eta_, squared_error_, static_cast<double>(t_)};
    for (const Fit& fit : fits_) {
      state.insert(state.end(), fit.gram.begin(), fit.gram.end());
      state.insert(state.end(), fit.moment.begin(), fit.moment.end());
    }
    return state;
  }
  bool RestoreLearnerState(const std::vector<double>& state) override {
    const size_t per_arm = terms_ * terms_ + terms_;
    if (state.size() != 3 + fits_.size() * per_arm || !(state[2] >= 0)) return false;
    eta_ = state[0];
    squared_error_ = state[1];
    t_ = static_cast<int64_t>(state[2]);
    const double* at = state.data() + 3;
    for (Fit& fit : fits_) {
      fit.gram.assign(at, at + terms_ * terms_);
      fit.moment.assign(at + terms_ * terms_, at + per_arm);
      at += per_arm;
    }
    return true;
  }

 private:
  static constexpr double kRidge = 1e-6;
  // Per-round squared error assumed at least this (keeps eta finite while
  // the fit is exact, e.g. on the first rounds).
  static constexpr double kErrorFloor = 1e-3;
  struct Fit {
    std::vector<double> gram;    // sum of phi phi^T
    std::vector<double> moment;  // sum of phi * cost
  };
  const int terms_;
  std::vector<Fit> fits_;
  std::vector<double> predicted_;  // at the last Probabilities() call
  std::vector<double> features_;
  double squared_error_ = 0;
  double eta_ = 0;
  int64_t t_ = 0;
};

}  // namespace

std::vector<double> TsallisProbabilities(const std::vector<double>& losses, double eta) {
  const double min_loss = *std::min_element(losses.begin(), losses.end());
  // At x = min - 2/eta the best arm alone has p = 1, so sum(p) >= 1; sum(p)
  // is increasing and convex in x, so Newton's steps from there decrease x
  // monotonically onto the root.
  double x = min_loss - 2 / eta;
  std::vector<double> p(losses.size());
  for (int step = 0; step < 100; ++step) {
    double sum = 0, slope = 0;
    for (size_t i = 0; i < losses.size(); ++i) {
      const double gap = eta * (losses[i] - x);
      p[i] = 4 / (gap * gap);
      sum += p[i];
      slope += eta * p[i] * std::sqrt(p[i]);
    }
    if (std::abs(sum - 1) < 1e-12) break;
    x -= (sum - 1) / slope;
  }
  double total = 0;
  for (double v : p) total += v;
  for (double& v : p) v /= total;
  return p;
}

std::vector<double> ChebyshevFeatures(double u, int terms) {
  std::vector<double> t(terms);
  for (int k = 0; k < terms; ++k) t[k] = k == 0 ? 1 : k == 1 ? u : 2 * u * t[k - 1] - t[k - 2];
  return t;
}

std::unique_ptr<Tuner> MakeTuner(const TunerConfig& config) {
  switch (config.algorithm) {
    case TunerAlgorithm::kTsallisInf:
    case TunerAlgorithm::kTsallisInfCb: return std::make_unique<TsallisInfTuner>(config);
    case TunerAlgorithm::kChebCb: return std::make_unique<ChebCbTuner>(config);
    case TunerAlgorithm::kFixed:
    case TunerAlgorithm::kGridOracle: break;
  }
  return std::make_unique<UniformTuner>(config);
}

}  // namespace solverd::sor::internal
