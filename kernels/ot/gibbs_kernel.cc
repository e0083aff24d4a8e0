#include "ot/gibbs_kernel.h"

#include <algorithm>
#include <cmath>

#include "common/parallel_for.h"
#include "ot/gibbs_kernel_passes.h"
#include "ot/gibbs_rows.h"
#include "ot/sinkhorn_math.h"

namespace solverd::ot::internal {
namespace {

// A scaling past this lets entries of K that underflowed at Rebuild() come
// back into play (1e-308 * 1e200 is still far below any mass that counts).
constexpr double kMaxScaling = 1e100;
// Plans of total mass outside [this, 1 / this] keep no single copy of a
// double K: its entries could leave single precision's range (1e-38 to
// 3e38), where a tolerance of 1e-6 of the mass still counts.
constexpr double kMinCopiedMass = 1e-20;

// A thread costs about as much to start as a pass over this many entries
// of K takes (measured on the 2-core dev VM: 0.14 ms per spawn and join):
// smaller passes run on the calling thread alone.
constexpr int64_t kMinEntriesPerPart = int64_t{1} << 16;

// The scaling that brings a row (column) summing to `sum` to `mass`: 0 for
// no mass; false when it is out of range.
bool Rescale(double mass, double sum, double max_scaling, double* scaling) {
  if (mass <= 0) {
    *scaling = 0;
    return true;
  }
  if (!(sum > kMinUsableSum && sum < kMaxUsableSum)) return false;
  *scaling = mass / sum;
  return *scaling >= 1 / max_scaling && *scaling <= max_scaling;
}

// Rescale() over-relaxed (sinkhorn_math.h's RelaxedPotential() in scaling
// form): *scaling, whose row (column) sums to *scaling * kernel_sum, times
// (mass / that sum)^factor; the plain step where the factor is 1. Sets
// *log_ratio = log(sum / mass) and *factor; false when out of range.
bool RelaxedRescale(double mass, double kernel_sum, const Relaxation& relaxation,
                    double max_scaling, double* scaling, double* log_ratio, double* factor) {
  *log_ratio = 0;
  *factor = 1;
  const double sum = *scaling * kernel_sum;
  if (relaxation.omega != 1 && mass > 0 && sum > 0) {
    *log_ratio = std::log(sum / mass);
    *factor = RelaxationFactor(*log_ratio, relaxation);
  }
  if (*factor == 1) return Rescale(mass, kernel_sum, max_scaling, scaling);
  *scaling *= std::exp(-*factor * *log_ratio);
  return *scaling >= 1 / max_scaling && *scaling <= max_scaling;
}

// The scaling exp(eta (potential - base)) that moves a kernel built at
// `base` to `potential`; false when it is out of range or undefined.
bool ScalingBetween(double base, double potential, double eta, double max_scaling,
                    double* scaling) {
  if (potential == kNegInf) {
    *scaling = 0;
    return true;
  }
  *scaling = std::exp(eta * (potential - base));
  return *scaling >= 1 / max_scaling && *scaling <= max_scaling;
}

}  // namespace

GibbsKernel::GibbsKernel(const double* cost, int64_t n, int64_t m, double eta, int threads,
                         KernelPrecision precision, double mass)
    : cost_(cost), n_(n), m_(m), eta_(eta), threads_(std::max(1, threads)),
      single_(precision == KernelPrecision::kSingle),
      max_scaling_(single_ ? kMaxSingleScaling : kMaxScaling),
      rounding_bound_(single_ ? SingleRoundingBound(mass) : 0),
      product_copy_fits_(n * m * static_cast<int64_t>(sizeof(double) + sizeof(float)) <=
                             kMaxBytes &&
                         mass >= kMinCopiedMass && mass <= 1 / kMinCopiedMass),
      u_(n, 1.0), v_(m, 1.0), next_u_(n, 0.0) {}

int64_t GibbsKernel::Parts() const {
  return std::clamp<int64_t>(threads_, 1, std::max<int64_t>(1, n_ * m_ / kMinEntriesPerPart));
}

void GibbsKernel::Rebuild(const std::vector<double>& x, const std::vector<double>& y) {
  if (single_ && kernel_single_.empty()) {  // allocated on first use only
    kernel_single_ = HugePageArray<float>(n_ * m_);
  } else if (!single_ && kernel_.empty()) {
    kernel_ = HugePageArray<double>(n_ * m_);
  }
  x0_ = x;
  y0_ = y;
  std::fill(u_.begin(), u_.end(), 1.0);
  std::fill(v_.begin(), v_.end(), 1.0);
  ParallelFor(n_, Parts(), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      if (single_) {
        KernelRow(&cost_[i * m_], y0_.data(), m_, eta_, x0_[i], &kernel_single_[i * m_]);
      } else {
        KernelRow(&cost_[i * m_], y0_.data(), m_, eta_, x0_[i], &kernel_[i * m_]);
      }
    }
  });
  product_copy_current_ = false;
}

void GibbsKernel::UseDoublePrecision() {
  if (!single_) return;
  single_ = false;
  max_scaling_ = kMaxScaling;
  rounding_bound_ = 0;
  kernel_single_ = HugePageArray<float>();
  x0_.clear();
}

bool GibbsKernel::Iterate(const std::vector<double>& a, const std::vector<double>& b,
                          const Relaxation& relaxation, double keep_below, double* row_error,
                          bool* updated, double* column_error) {
  *updated = false;
  struct alignas(64) PartFigures {  // a cache line each: parts write theirs per row
    double error = 0;
    bool usable = true;
  };
  std::vector<PartFigures> figures(Parts());
  ColumnPass([&](int64_t part, int64_t first, int64_t count, const auto* rows, double* columns) {
    double sums[kRowBlock], scales[kRowBlock];
    BlockDots(rows, count, m_, v_.data(), sums);
    for (int64_t k = 0; k < count; ++k) {
      const int64_t i = first + k;
      const double row = u_[i] == 0 ? 0 : u_[i] * sums[k];
      figures[part].error += std::fabs(row - a[i]);
      double log_ratio = 0, factor = 1;
      next_u_[i] = u_[i];
      const bool usable = RelaxedRescale(a[i], sums[k], relaxation, max_scaling_, &next_u_[i],
                                         &log_ratio, &factor);
      figures[part].usable = figures[part].usable && usable;
      scales[k] = usable ? next_u_[i] : 0;  // an unusable pass changes nothing
    }
    BlockAddScaled(scales, rows, count, m_, columns);
  });
  *row_error = rounding_bound_;
  bool usable = true;
  for (const PartFigures& f : figures) {
    *row_error += f.error;
    usable = usable && f.usable;
  }
  if (*row_error <= keep_below) return true;
  if (!usable) return false;
  std::vector<double>& columns = column_partials_[0];
  double left = 0;
  for (int64_t j = 0; j < m_; ++j) {
    double log_ratio = 0, factor = 1, scaling = v_[j];
    if (!RelaxedRescale(b[j], columns[j], relaxation, max_scaling_, &scaling, &log_ratio,
                        &factor)) {
      return false;
    }
    columns[j] = scaling;
    left += RelaxedMarginalError(b[j], log_ratio, factor);
  }
  u_.swap(next_u_);
  std::copy(columns.begin(), columns.begin() + m_, v_.begin());
  *column_error = left;
  *updated = true;
  return true;
}

bool GibbsKernel::SetPotentials(const std::vector<double>& x, const std::vector<double>& y) {
  if (x0_.empty()) return false;  // never built
  std::vector<double> u(n_), v(m_);
  for (int64_t i = 0; i < n_; ++i) {
    if (!ScalingBetween(x0_[i], x[i], eta_, max_scaling_, &u[i])) return false;
  }
  for (int64_t j = 0; j < m_; ++j) {
    if (!ScalingBetween(y0_[j], y[j], eta_, max_scaling_, &v[j])) return false;
  }
  u_.swap(u);
  v_.swap(v);
  return true;
}

void GibbsKernel::Marginals(std::vector<double>* r, std::vector<double>* c) {
  r->resize(n_);
  ColumnPass([&](int64_t, int64_t first, int64_t count, const auto* rows, double* columns) {
    double sums[kRowBlock];
    BlockDots(rows, count, m_, v_.data(), sums);
    for (int64_t k = 0; k < count; ++k) {
      (*r)[first + k] = u_[first + k] == 0 ? 0 : u_[first + k] * sums[k];
    }
    BlockAddScaled(&u_[first], rows, count, m_, columns);
  });
  ScaledColumns(v_.data(), c);
}

void GibbsKernel::ScaledColumns(const double* scale, std::vector<double>* out, int which) const {
  out->resize(m_);
  const double* sums = &column_partials_[0][which * m_];
  for (int64_t j = 0; j < m_; ++j) (*out)[j] = scale[j] * sums[j];
}

void GibbsKernel::RowSums(std::vector<double>* r) const { RowDots(v_.data(), r); }

void GibbsKernel::RowDots(const double* v, std::vector<double>* r) const {
  WithStoredKernel([&](const auto* kernel) { RowDotsOver(kernel, v, r); });
}

void GibbsKernel::PlanTotals(double* transport_cost, double* plogp) const {
  std::vector<double> x, y;
  Potentials(&x, &y);
  std::vector<double> vy(m_);
  for (int64_t j = 0; j < m_; ++j) {  // 0 where the column has no mass (y_j = -inf)
    vy[j] = v_[j] > 0 && std::isfinite(y[j]) ? v_[j] * y[j] : 0.0;
  }
  std::vector<double> row_cost(n_, 0.0), row_plogp(n_, 0.0);
  ParallelFor(n_, Parts(), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      if (u_[i] == 0) continue;
      const double* cost_row = &cost_[i * m_];
      const RowTotals t =
          single_ ? RowTotalsFor(&kernel_single_[i * m_], cost_row, v_.data(), vy.data(), m_)
                  : RowTotalsFor(&kernel_[i * m_], cost_row, v_.data(), vy.data(), m_);
      // sum_j P_ij log P_ij with log P_ij = eta (x_i + y_j - C_ij) - 1.
      const double mass = u_[i] * t.kv;
      if (mass == 0) continue;  // also a row built at x0_i = -inf
      row_cost[i] = u_[i] * t.kvc;
      row_plogp[i] = eta_ * (x[i] * mass + u_[i] * t.kvy - row_cost[i]) - mass;
    }
  });
  *transport_cost = *plogp = 0;
  for (int64_t i = 0; i < n_; ++i) {
    *transport_cost += row_cost[i];
    *plogp += row_plogp[i];
  }
}

void GibbsKernel::Potentials(std::vector<double>* x, std::vector<double>* y) const {
  x->resize(n_);
  y->resize(m_);
  for (int64_t i = 0; i < n_; ++i) (*x)[i] = x0_[i] + std::log(u_[i]) / eta_;
  for (int64_t j = 0; j < m_; ++j) (*y)[j] = y0_[j] + std::log(v_[j]) / eta_;
}

}  // namespace solverd::ot::internal
