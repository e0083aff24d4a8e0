#include "sor_cases.h"

#include <cmath>

namespace solverd::bench {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kDt = 1e-3;
constexpr int kGrid = 10;

double Beta(double a, double b, std::mt19937_64& rng) {
  std::gamma_distribution<double> x(a, 1.0), y(b, 1.0);
  const double u = x(rng), v = y(rng);
  return u / (u + v);
}

}  // namespace

std::vector<SyntheticInstance> SyntheticSequence(double beta_a, double beta_b, int count,
                                                 uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  const int n = kGrid * kGrid;
  std::vector<SyntheticInstance> out(count);
  for (SyntheticInstance& inst : out) {
    inst.shift = -0.15 + 0.6 * Beta(beta_a, beta_b, rng);
    inst.b.resize(n);
    double norm = 0;
    for (double& v : inst.b) { v = normal(rng); norm += v * v; }
    norm = std::sqrt(norm);
    if (norm > std::sqrt(n)) for (double& v : inst.b) v *= std::sqrt(n) / norm;
  }
  return out;
}

double InstanceOptimalOmega(double shift) {
  const double rho = 4 * std::cos(kPi / (kGrid + 1)) / (4 + shift);
  return 2 / (1 + std::sqrt(1 - rho * rho));
}

HeatEquation::HeatEquation(int nx)
    : nx_(nx), h_(1.0 / nx), laplacian_(solverd::sor::Laplacian2d(nx - 1, nx - 1)), a_(laplacian_) {}

double HeatEquation::Kappa(int step) const { return 2.0 + 1.5 * std::sin(2 * kPi * step / 100.0); }

const solverd::sor::CsrMatrix& HeatEquation::Matrix(int step) {
  const double s = 0.5 * kDt * Kappa(step) / (h_ * h_);
  for (int32_t i = 0; i < a_.n; ++i) {
    for (int64_t k = a_.row_ptr[i]; k < a_.row_ptr[i + 1]; ++k) {
      a_.values[k] = s * laplacian_.values[k] + (a_.col_idx[k] == i ? 1.0 : 0.0);
    }
  }
  return a_;
}

std::vector<double> HeatEquation::RightHandSide(int step, const std::vector<double>& u) const {
  const double s = 0.5 * kDt * Kappa(step) / (h_ * h_);
  const double cx = 0.5 + 0.3 * std::cos(2 * kPi * step / 200.0);
  const double cy = 0.5 + 0.3 * std::sin(2 * kPi * step / 200.0);
  const int m = nx_ - 1;
  std::vector<double> b(u.size());
  for (int32_t i = 0; i < laplacian_.n; ++i) {
    double lu = 0;
    for (int64_t k = laplacian_.row_ptr[i]; k < laplacian_.row_ptr[i + 1]; ++k) {
      lu += laplacian_.values[k] * u[laplacian_.col_idx[k]];
    }
    const double x = (i % m + 1) * h_, y = (i / m + 1) * h_;
    const double source = 100 * std::exp(-((x - cx) * (x - cx) + (y - cy) * (y - cy)) / 0.01);
    b[i] = u[i] - s * lu + kDt * source;
  }
  return b;
}

std::vector<double> HeatEquation::InitialState() const {
  const int m = nx_ - 1;
  std::vector<double> u(laplacian_.n);
  for (int32_t i = 0; i < laplacian_.n; ++i) {
    const double x = (i % m + 1) * h_, y = (i / m + 1) * h_;
    u[i] = std::sin(kPi * x) * std::sin(kPi * y);
  }
  return u;
}

}  // namespace solverd::bench
