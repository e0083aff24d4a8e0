#include "dmmv/fir.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace solverd::dmmv::fir {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int kGridPerOrder = 16;
constexpr int kCheckPoints = 16384;

// Desired response at w (fraction of Nyquist): 1, 0, or -1 in a transition band.
int Desired(const Spec& spec, double w) {
  const std::vector<double>& e = spec.edges;
  switch (spec.type) {
    case Type::kLowPass: return w <= e[0] ? 1 : w >= e[1] ? 0 : -1;
    case Type::kHighPass: return w <= e[0] ? 0 : w >= e[1] ? 1 : -1;
    case Type::kBandPass:
      if (w <= e[0] || w >= e[3]) return 0;
      return w >= e[1] && w <= e[2] ? 1 : -1;
  }
  return -1;
}

void Row(int half, double w, double* row) {
  for (int n = 0; n < half; ++n) row[n] = 2 * std::cos((half - n) * w * kPi);
  row[half] = 1;
}

// Least squares by the normal equations (Cholesky); the systems are small
// (M + 1 unknowns) and well conditioned on a dense grid.
std::vector<double> LeastSquares(const std::vector<double>& x, const std::vector<double>& b,
                                 int64_t rows, int64_t cols) {
  std::vector<double> g(cols * cols, 0), r(cols, 0);
  for (int64_t k = 0; k < rows; ++k) {
    const double* row = &x[k * cols];
    for (int64_t i = 0; i < cols; ++i) {
      r[i] += row[i] * b[k];
      for (int64_t j = 0; j <= i; ++j) g[i * cols + j] += row[i] * row[j];
    }
  }
  for (int64_t i = 0; i < cols; ++i) g[i * cols + i] *= 1 + 1e-12;
  for (int64_t j = 0; j < cols; ++j) {  // lower Cholesky factor in place
    double diag = g[j * cols + j];
    for (int64_t k = 0; k < j; ++k) diag -= g[j * cols + k] * g[j * cols + k];
    g[j * cols + j] = std::sqrt(std::max(diag, 1e-300));
    for (int64_t i = j + 1; i < cols; ++i) {
      double v = g[i * cols + j];
      for (int64_t k = 0; k < j; ++k) v -= g[i * cols + k] * g[j * cols + k];
      g[i * cols + j] = v / g[j * cols + j];
    }
  }
  for (int64_t i = 0; i < cols; ++i) {  // L y = r, then L^T h = y
    for (int64_t k = 0; k < i; ++k) r[i] -= g[i * cols + k] * r[k];
    r[i] /= g[i * cols + i];
  }
  for (int64_t i = cols - 1; i >= 0; --i) {
    for (int64_t k = i + 1; k < cols; ++k) r[i] -= g[k * cols + i] * r[k];
    r[i] /= g[i * cols + i];
  }
  return r;
}

}  // namespace

Status Validate(const Spec& spec) {
  if (spec.order < 2 || spec.order > 1000 || spec.order % 2 != 0) {
    return InvalidArgument("fir.order: must be even, 2 to 1000 (a type-I filter)");
  }
  if (spec.bits < 2 || spec.bits > 24) return InvalidArgument("fir.bits: must be 2 to 24");
  const size_t want = spec.type == Type::kBandPass ? 4 : 2;
  if (spec.edges.size() != want) {
    return InvalidArgument("fir.edges: this filter type needs " + std::to_string(want) + " edges");
  }
  for (size_t i = 0; i < want; ++i) {
    const double e = spec.edges[i];
    if (!(e > 0 && e < 1)) return InvalidArgument("fir.edges: must lie in (0, 1), fractions of Nyquist");
    if (i > 0 && !(e > spec.edges[i - 1])) return InvalidArgument("fir.edges: must increase");
  }
  return Status::Ok();
}

Status Build(const Spec& spec, Problem* problem) {
  if (Status s = Validate(spec); !s.ok()) return s;
  const int half = spec.order / 2;
  const int points = kGridPerOrder * spec.order;
  Problem p;
  p.cols = half + 1;
  Instance inst;
  for (int i = 0; i <= points; ++i) {
    const double w = static_cast<double>(i) / points;
    const int desired = Desired(spec, w);
    if (desired < 0) continue;
    p.x.resize(p.x.size() + p.cols);
    Row(half, w, &p.x[p.x.size() - p.cols]);
    inst.b.push_back(desired);
  }
  p.rows = static_cast<int64_t>(inst.b.size());
  const int64_t scale = int64_t{1} << (spec.bits - 1);
  Levels levels;
  levels.lo = -1.0;
  levels.step = 1.0 / static_cast<double>(scale);
  levels.count = 2 * scale;
  inst.levels = {levels};
  inst.start_values = LeastSquares(p.x, inst.b, p.rows, p.cols);
  p.instances = {std::move(inst)};
  *problem = std::move(p);
  return Status::Ok();
}

Response Evaluate(const Spec& spec, const std::vector<double>& h) {
  const int half = static_cast<int>(h.size()) - 1;
  std::vector<double> row(half + 1);
  Response r;
  for (int i = 0; i <= kCheckPoints; ++i) {
    const double w = static_cast<double>(i) / kCheckPoints;
    const int desired = Desired(spec, w);
    if (desired < 0) continue;
    Row(half, w, row.data());
    double a = 0;
    for (int n = 0; n <= half; ++n) a += row[n] * h[n];
    if (desired == 1) {
      r.passband_deviation = std::max(r.passband_deviation, std::fabs(a - 1));
    } else {
      r.stopband_peak = std::max(r.stopband_peak, std::fabs(a));
    }
  }
  r.max_error = std::max(r.passband_deviation, r.stopband_peak);
  return r;
}

std::vector<int64_t> IntegerTaps(const Spec& spec, const InstanceResult& result) {
  const int64_t scale = int64_t{1} << (spec.bits - 1);
  const int half = spec.order / 2;
  std::vector<int64_t> taps(spec.order + 1);
  for (int n = 0; n <= half; ++n) {
    const int64_t k = result.level_indices[n] - scale;  // level q is (q - scale) / scale
    taps[n] = k;
    taps[spec.order - n] = k;
  }
  return taps;
}

}  // namespace solverd::dmmv::fir
