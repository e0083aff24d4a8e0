// GibbsKernel's products with the plan at the current scalings (SNS's
// Newton systems where it keeps the whole plan) and its rows read without
// an exp; see gibbs_kernel.h.
#include <algorithm>
#include <vector>

#include "common/parallel_for.h"
#include "ot/gibbs_kernel.h"
#include "ot/gibbs_kernel_passes.h"
#include "ot/gibbs_rows.h"

namespace solverd::ot::internal {

bool GibbsKernel::MakeProductCopy() const {
  if (product_copy_current_) return true;
  if (!product_copy_fits_) return false;
  if (product_copy_.empty()) product_copy_ = HugePageArray<float>(n_ * m_);
  ParallelFor(n_, Parts(), [&](int64_t begin, int64_t end) {
    std::copy(kernel_.data() + begin * m_, kernel_.data() + end * m_,
              product_copy_.data() + begin * m_);
  });
  product_copy_current_ = true;
  return true;
}

void GibbsKernel::PlanTimes(const std::vector<double>& v, std::vector<double>* out) {
  std::vector<double> scaled(m_);
  for (int64_t j = 0; j < m_; ++j) scaled[j] = v_[j] * v[j];
  WithProductKernel([&](const auto* kernel) { RowDotsOver(kernel, scaled.data(), out); });
}

void GibbsKernel::PlanTransposeTimes(const std::vector<double>& w, std::vector<double>* out) {
  ProductPass([&](int64_t, int64_t first, int64_t count, const auto* rows, double* columns) {
    double scales[kRowBlock];
    for (int64_t k = 0; k < count; ++k) scales[k] = u_[first + k] * w[first + k];
    BlockAddScaled(scales, rows, count, m_, columns);
  });
  ScaledColumns(v_.data(), out);
}

void GibbsKernel::PlanColumnSquares(const std::vector<double>& w, std::vector<double>* out) {
  ProductPass([&](int64_t, int64_t first, int64_t count, const auto* rows, double* columns) {
    double scales[kRowBlock];
    for (int64_t k = 0; k < count; ++k) {
      scales[k] = u_[first + k] * u_[first + k] * w[first + k];
    }
    BlockAddScaledSquares(scales, rows, count, m_, columns);
  });
  std::vector<double> squares(m_);
  for (int64_t j = 0; j < m_; ++j) squares[j] = v_[j] * v_[j];
  ScaledColumns(squares.data(), out);
}

void GibbsKernel::PlanGramTimes(const std::vector<double>& w, const std::vector<double>& v,
                                std::vector<double>* out) {
  std::vector<double> scaled(m_);
  for (int64_t j = 0; j < m_; ++j) scaled[j] = v_[j] * v[j];
  ProductPass([&](int64_t, int64_t first, int64_t count, const auto* rows, double* columns) {
    double sums[kRowBlock], scales[kRowBlock];
    BlockDots(rows, count, m_, scaled.data(), sums);
    for (int64_t k = 0; k < count; ++k) {
      const double u = u_[first + k];
      scales[k] = u * w[first + k] * u * sums[k];
    }
    BlockAddScaled(scales, rows, count, m_, columns);
  });
  ScaledColumns(v_.data(), out);
}

void GibbsKernel::PlanGroupRowSums(const std::vector<int32_t>& group, int size,
                                   std::vector<double>* q) const {
  // The grouped columns ordered by group (a counting sort), each weighing
  // its v_j: a row's group sums are then runs of its entries.
  std::vector<int64_t> run_begin(size + 1, 0);
  for (int32_t g : group) {
    if (g >= 0) ++run_begin[g + 1];
  }
  for (int t = 0; t < size; ++t) run_begin[t + 1] += run_begin[t];
  std::vector<int32_t> order(run_begin[size]);
  std::vector<double> weight(run_begin[size]);
  std::vector<int64_t> next(run_begin.begin(), run_begin.end() - 1);
  for (int64_t j = 0; j < m_; ++j) {
    if (group[j] < 0) continue;
    const int64_t p = next[group[j]]++;
    order[p] = static_cast<int32_t>(j);
    weight[p] = v_[j];
  }
  const ColumnRuns runs{order.data(), weight.data(), run_begin.data(), size};
  q->resize(n_ * size);
  WithProductKernel([&](const auto* kernel) {
    ParallelFor((n_ + kRowBlock - 1) / kRowBlock, Parts(), [&](int64_t begin, int64_t end) {
      for (int64_t first = begin * kRowBlock; first < std::min(n_, end * kRowBlock);
           first += kRowBlock) {
        const int64_t count = std::min(kRowBlock, n_ - first);
        double* out = &(*q)[first * size];
        PrefetchRows(kernel, first + count, std::min(kRowBlock, n_ - first - count));
        BlockRunSums(&kernel[first * m_], count, m_, runs, out);
        for (int64_t k = 0; k < count; ++k) {
          for (int t = 0; t < size; ++t) out[k * size + t] *= u_[first + k];
        }
      }
    }, 1);
  });
}

void GibbsKernel::PlanRow(int64_t i, double* out) const {
  if (single_) {
    ScaledRow(u_[i], &kernel_single_[i * m_], v_.data(), m_, out);
  } else {
    ScaledRow(u_[i], &kernel_[i * m_], v_.data(), m_, out);
  }
}

void GibbsKernel::PlanAt(int64_t i, const int32_t* columns, int64_t count, double* out) const {
  for (int64_t k = 0; k < count; ++k) {
    const double kernel = single_ ? static_cast<double>(kernel_single_[i * m_ + columns[k]])
                                  : kernel_[i * m_ + columns[k]];
    out[k] = u_[i] * kernel * v_[columns[k]];
  }
}

}  // namespace solverd::ot::internal
