#include "ot/gibbs_kernel.h"

#include <algorithm>
#include <cmath>

#include "common/cpu_clones.h"
#include "common/parallel_for.h"
#include "common/vector_exp.h"
#include "ot/sinkhorn_math.h"

namespace solverd::ot::internal {
namespace {

// A scaling past this lets entries of K that underflowed at Rebuild() come
// back into play (1e-308 * 1e200 is still far below any mass that counts).
constexpr double kMaxScaling = 1e100;

// The scaling that brings a row (column) summing to `sum` to `mass`: 0 for
// no mass; false when it is out of range.
// A thread costs about as much to start as a pass over this many entries
// of K takes (measured on the 2-core dev VM: 0.14 ms per spawn and join):
// smaller passes run on the calling thread alone.
constexpr int64_t kMinEntriesPerPart = int64_t{1} << 16;

constexpr int64_t kCacheLineDoubles = 8;

bool Rescale(double mass, double sum, double* scaling) {
  if (mass <= 0) {
    *scaling = 0;
    return true;
  }
  if (!(sum > kMinUsableSum && sum < kMaxUsableSum)) return false;
  *scaling = mass / sum;
  return *scaling >= 1 / kMaxScaling && *scaling <= kMaxScaling;
}

// The scaling exp(eta (potential - base)) that moves a kernel built at
// `base` to `potential`; false when it is out of range or undefined.
bool ScalingBetween(double base, double potential, double eta, double* scaling) {
  if (potential == kNegInf) {
    *scaling = 0;
    return true;
  }
  *scaling = std::exp(eta * (potential - base));
  return *scaling >= 1 / kMaxScaling && *scaling <= kMaxScaling;
}

SOLVERD_CPU_CLONES double Dot(const double* row, const double* v, int64_t m) {
  double sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < m; ++j) sum += row[j] * v[j];
  return sum;
}

SOLVERD_CPU_CLONES void AddScaled(double scale, const double* row, int64_t m, double* into) {
#pragma omp simd
  for (int64_t j = 0; j < m; ++j) into[j] += scale * row[j];
}

SOLVERD_CPU_CLONES void PlanRow(const double* cost_row, const double* y, int64_t m, double eta,
                                double xi, double* out) {
#pragma omp simd
  for (int64_t j = 0; j < m; ++j) out[j] = VectorExp(LogPlan(eta, xi, y[j], cost_row[j]));
}

}  // namespace

GibbsKernel::GibbsKernel(const double* cost, int64_t n, int64_t m, double eta, int threads)
    : cost_(cost), n_(n), m_(m), eta_(eta), threads_(std::max(1, threads)),
      u_(n, 1.0), v_(m, 1.0), next_u_(n, 0.0) {}

int64_t GibbsKernel::Parts() const {
  return std::clamp<int64_t>(threads_, 1, std::max<int64_t>(1, n_ * m_ / kMinEntriesPerPart));
}

void GibbsKernel::Rebuild(const std::vector<double>& x, const std::vector<double>& y) {
  kernel_.resize(n_ * m_);  // allocated on first use only
  x0_ = x;
  y0_ = y;
  std::fill(u_.begin(), u_.end(), 1.0);
  std::fill(v_.begin(), v_.end(), 1.0);
  ParallelFor(n_, Parts(), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      PlanRow(&cost_[i * m_], y0_.data(), m_, eta_, x0_[i], &kernel_[i * m_]);
    }
  });
}

template <typename RowFn>
void GibbsKernel::ColumnPass(const RowFn& row) {
  const int64_t parts = Parts(), chunk = (n_ + parts - 1) / parts;
  column_partials_.resize(parts);
  ParallelFor(
      parts, parts,
      [&](int64_t first, int64_t last) {
        for (int64_t part = first; part < last; ++part) {
          std::vector<double>& columns = column_partials_[part];
          // The padding keeps two parts' accumulators off a shared cache
          // line (each is allocated by the thread that first runs it).
          columns.assign(m_ + kCacheLineDoubles, 0.0);
          for (int64_t i = part * chunk; i < std::min(n_, (part + 1) * chunk); ++i) {
            row(part, i, &kernel_[i * m_], columns.data());
          }
        }
      },
      /*min_items_per_thread=*/1);
  for (int64_t part = 1; part < parts; ++part) {
    for (int64_t j = 0; j < m_; ++j) column_partials_[0][j] += column_partials_[part][j];
  }
}

bool GibbsKernel::Iterate(const std::vector<double>& a, const std::vector<double>& b,
                          double keep_below, double* row_error, bool* updated) {
  *updated = false;
  struct alignas(64) PartFigures {  // a cache line each: parts write theirs per row
    double error = 0;
    bool usable = true;
  };
  std::vector<PartFigures> figures(Parts());
  ColumnPass([&](int64_t part, int64_t i, const double* row, double* columns) {
    const double sum = Dot(row, v_.data(), m_);
    figures[part].error += std::fabs((u_[i] == 0 ? 0 : u_[i] * sum) - a[i]);
    if (!Rescale(a[i], sum, &next_u_[i])) {
      figures[part].usable = false;
    } else if (next_u_[i] > 0) {
      AddScaled(next_u_[i], row, m_, columns);
    }
  });
  *row_error = 0;
  bool usable = true;
  for (const PartFigures& f : figures) {
    *row_error += f.error;
    usable = usable && f.usable;
  }
  if (*row_error <= keep_below) return true;
  if (!usable) return false;
  std::vector<double>& columns = column_partials_[0];
  for (int64_t j = 0; j < m_; ++j) {
    if (!Rescale(b[j], columns[j], &columns[j])) return false;
  }
  u_.swap(next_u_);
  std::copy(columns.begin(), columns.begin() + m_, v_.begin());
  *updated = true;
  return true;
}

bool GibbsKernel::SetPotentials(const std::vector<double>& x, const std::vector<double>& y) {
  if (x0_.empty()) return false;  // never built
  std::vector<double> u(n_), v(m_);
  for (int64_t i = 0; i < n_; ++i) {
    if (!ScalingBetween(x0_[i], x[i], eta_, &u[i])) return false;
  }
  for (int64_t j = 0; j < m_; ++j) {
    if (!ScalingBetween(y0_[j], y[j], eta_, &v[j])) return false;
  }
  u_.swap(u);
  v_.swap(v);
  return true;
}

void GibbsKernel::Marginals(std::vector<double>* r, std::vector<double>* c) {
  r->resize(n_);
  ColumnPass([&](int64_t, int64_t i, const double* row, double* columns) {
    (*r)[i] = u_[i] == 0 ? 0 : u_[i] * Dot(row, v_.data(), m_);
    if (u_[i] > 0) AddScaled(u_[i], row, m_, columns);
  });
  c->resize(m_);
  for (int64_t j = 0; j < m_; ++j) (*c)[j] = v_[j] * column_partials_[0][j];
}

void GibbsKernel::RowSums(std::vector<double>* r) const {
  r->resize(n_);
  ParallelFor(n_, Parts(), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      (*r)[i] = u_[i] == 0 ? 0 : u_[i] * Dot(&kernel_[i * m_], v_.data(), m_);
    }
  });
}

void GibbsKernel::Potentials(std::vector<double>* x, std::vector<double>* y) const {
  x->resize(n_);
  y->resize(m_);
  for (int64_t i = 0; i < n_; ++i) (*x)[i] = x0_[i] + std::log(u_[i]) / eta_;
  for (int64_t j = 0; j < m_; ++j) (*y)[j] = y0_[j] + std::log(v_[j]) / eta_;
}

}  // namespace solverd::ot::internal
