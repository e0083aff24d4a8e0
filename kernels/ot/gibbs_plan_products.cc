// GibbsKernel's products with the plan at the current scalings (SNS's
// Newton systems where it keeps the whole plan) and its rows read without
// an exp; see gibbs_kernel.h.
#include <algorithm>
#include <vector>

#include "common/parallel_for.h"
#include "ot/gibbs_kernel.h"
#include "ot/gibbs_kernel_passes.h"
#include "ot/gibbs_rows.h"
#include "ot/sinkhorn_math.h"

namespace solverd::ot::internal {
namespace {

// The columns in groups ordered by group (a counting sort), each weighing
// its v_j: a row's group sums are then runs of its entries.
class GroupedColumns {
 public:
  GroupedColumns(const std::vector<int32_t>& group, int size, const std::vector<double>& v)
      : begin_(size + 1, 0) {
    if (size == 0) return;  // no groups, whatever `group` holds
    for (int32_t g : group) {
      if (g >= 0) ++begin_[g + 1];
    }
    for (int t = 0; t < size; ++t) begin_[t + 1] += begin_[t];
    order_.resize(begin_[size]);
    weight_.resize(begin_[size]);
    std::vector<int64_t> next(begin_.begin(), begin_.end() - 1);
    for (size_t j = 0; j < group.size(); ++j) {
      if (group[j] < 0) continue;
      const int64_t p = next[group[j]]++;
      order_[p] = static_cast<int32_t>(j);
      weight_[p] = v[j];
    }
  }
  ColumnRuns runs() const {
    return ColumnRuns{order_.data(), weight_.data(), begin_.data(),
                      static_cast<int>(begin_.size()) - 1};
  }

 private:
  std::vector<int64_t> begin_;
  std::vector<int32_t> order_;
  std::vector<double> weight_;
};

// The group sums of `count` rows of the plan from rows of K and their u.
template <typename T>
void GroupSumsOfBlock(const GroupedColumns& grouped, const double* u, const T* rows,
                      int64_t count, int64_t m, double* out) {
  const ColumnRuns runs = grouped.runs();
  BlockRunSums(rows, count, m, runs, out);
  for (int64_t k = 0; k < count; ++k) {
    for (int t = 0; t < runs.runs; ++t) out[k * runs.runs + t] *= u[k];
  }
}

}  // namespace

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
                                std::vector<double>* out, std::vector<double>* plan_v) {
  std::vector<double> scaled(m_);
  for (int64_t j = 0; j < m_; ++j) scaled[j] = v_[j] * v[j];
  if (plan_v != nullptr) plan_v->resize(n_);
  ProductPass([&](int64_t, int64_t first, int64_t count, const auto* rows, double* columns) {
    double sums[kRowBlock], scales[kRowBlock];
    BlockDots(rows, count, m_, scaled.data(), sums);
    for (int64_t k = 0; k < count; ++k) {
      const double u = u_[first + k];
      const double row = u == 0 ? 0 : u * sums[k];  // (P v)_i
      if (plan_v != nullptr) (*plan_v)[first + k] = row;
      scales[k] = u * w[first + k] * row;
    }
    BlockAddScaled(scales, rows, count, m_, columns);
  });
  ScaledColumns(v_.data(), out);
}

void GibbsKernel::PlanGroupRowSums(const std::vector<int32_t>& group, int size,
                                   std::vector<double>* q) const {
  const GroupedColumns grouped(group, size, v_);
  q->resize(n_ * size);
  WithProductKernel([&](const auto* kernel) {
    ParallelFor((n_ + kRowBlock - 1) / kRowBlock, Parts(), [&](int64_t begin, int64_t end) {
      for (int64_t first = begin * kRowBlock; first < std::min(n_, end * kRowBlock);
           first += kRowBlock) {
        const int64_t count = std::min(kRowBlock, n_ - first);
        PrefetchRows(kernel, first + count, std::min(kRowBlock, n_ - first - count));
        GroupSumsOfBlock(grouped, &u_[first], &kernel[first * m_], count, m_,
                         &(*q)[first * size]);
      }
    }, 1);
  });
}

void GibbsKernel::PlanSchurSetup(const std::vector<double>& w,
                                 const std::vector<double>& square_weights,
                                 const std::vector<int32_t>& group, int size,
                                 std::vector<double>* back, std::vector<double>* squares,
                                 std::vector<double>* q) {
  const GroupedColumns grouped(group, size, v_);
  if (size > 0) q->resize(n_ * size);
  ProductPass([&](int64_t, int64_t first, int64_t count, const auto* rows, double* columns) {
    double scales[kRowBlock], square_scales[kRowBlock];
    for (int64_t k = 0; k < count; ++k) {
      const double u = u_[first + k];
      scales[k] = u * w[first + k];
      square_scales[k] = u * u * square_weights[first + k];
    }
    BlockAddScaled(scales, rows, count, m_, columns);
    BlockAddScaledSquares(square_scales, rows, count, m_, columns + m_);
    if (size > 0) GroupSumsOfBlock(grouped, &u_[first], rows, count, m_, &(*q)[first * size]);
  }, /*accumulators=*/2);
  ScaledColumns(v_.data(), back);
  std::vector<double> v_squares(m_);
  for (int64_t j = 0; j < m_; ++j) v_squares[j] = v_[j] * v_[j];
  ScaledColumns(v_squares.data(), squares, 1);
}

void GibbsKernel::PlanHeaviestWeightedRows(const std::vector<double>& weight,
                                           std::vector<int32_t>* rows) const {
  rows->assign(m_, -1);
  std::vector<double> best(m_, 0.0), plan(m_);
  for (int64_t i = 0; i < n_; ++i) {
    if (!(weight[i] > 0)) continue;
    PlanRow(i, plan.data());
    for (int64_t j = 0; j < m_; ++j) TakeIfHeavier(plan[j] * weight[i], i, &best[j], &(*rows)[j]);
  }
}

void GibbsKernel::PlanRow(int64_t i, double* out) const {
  WithStoredKernel(
      [&](const auto* kernel) { ScaledRow(u_[i], &kernel[i * m_], v_.data(), m_, out); });
}

void GibbsKernel::PlanAt(int64_t i, const int32_t* columns, int64_t count, double* out) const {
  WithStoredKernel([&](const auto* kernel) {
    const auto* row = &kernel[i * m_];
    for (int64_t k = 0; k < count; ++k) {
      out[k] = u_[i] * static_cast<double>(row[columns[k]]) * v_[columns[k]];
    }
  });
}

}  // namespace solverd::ot::internal
