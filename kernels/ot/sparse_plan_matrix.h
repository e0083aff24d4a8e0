// SparsePlanMatrix: the CPU backend's sparsified plan Ps of the Newton
// stage, stored both by rows and by columns so that Ps v and Ps^T u are
// each a gather (one running sum per output) rather than a scatter.
// Values are kept in single precision, sums in double: the Newton stage's
// products stream them once per conjugate-gradient step, and the sparse
// Hessian already leaves out up to 1e-5 of P's mass, far more than the
// 2^-24 (relative) that rounding each entry changes (same Newton steps on
// bench/ot's cases; 9% less time at n = 2000).
// Not thread-safe: one solver thread builds it, then any number may
// read it concurrently.
#ifndef SOLVERD_KERNELS_OT_SPARSE_PLAN_MATRIX_H_
#define SOLVERD_KERNELS_OT_SPARSE_PLAN_MATRIX_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "common/huge_page_array.h"

namespace solverd::ot::internal {

// Writes to columns[] the j < m with values[j] >= threshold, in order, and
// returns how many: without a branch, one store per j (columns needs room
// for m), for rows where the kept entries follow no pattern a predictor
// could learn.
inline int64_t ColumnsAtLeast(const double* values, int64_t m, double threshold,
                              int32_t* columns) {
  int64_t count = 0;
  for (int64_t j = 0; j < m; ++j) {
    columns[count] = static_cast<int32_t>(j);
    count += values[j] >= threshold;
  }
  return count;
}

// rank[j] = EntryRank(log_plan[j], row_weight, col_weight[j]) for j < m.
void RankRow(const double* log_plan, double row_weight, const double* col_weight, int64_t m,
             double* rank);

// Which entries SparsePlanMatrix::Build() keeps: those whose EntryRank from
// the log weights row_weight[i] and col_weight[j] (sizes n and m) is at
// least threshold.
struct KeepRule {
  double threshold = 0;
  const double* row_weight = nullptr;
  const double* col_weight = nullptr;
};

class SparsePlanMatrix {
 public:
  // Keeps the entries `rule` keeps, where log_plan_row(i, out) writes
  // log P_i. into out[0, m), and plan_row (if set) P_i. itself, which is
  // otherwise exp of the log (when P is at hand without an exp, as the
  // CPU's cached kernel has it); rows on up to `threads` threads, each
  // row's functions called once. The products use the same threads.
  using PlanRowFn = std::function<void(int64_t i, double* out)>;
  void Build(int64_t n, int64_t m, int threads, const KeepRule& rule,
             const PlanRowFn& log_plan_row, const PlanRowFn& plan_row = nullptr);

  // Recomputes the kept entries' values, the same entries kept:
  // row_values(i, columns, count, out) writes P_ij for row i's `count`
  // kept columns. Returns the values' sum.
  using RowValuesFn =
      std::function<void(int64_t i, const int32_t* columns, int64_t count, double* out)>;
  double Refresh(const RowValuesFn& row_values);

  int64_t entries() const { return entries_; }
  // out = Ps in (in of size m, out of size n).
  void Multiply(const std::vector<double>& in, std::vector<double>* out) const;
  // out = Ps^T in (in of size n, out of size m).
  void MultiplyTransposed(const std::vector<double>& in, std::vector<double>* out) const;
  // out_j = sum_i Ps_ij^2 w_i.
  void ColumnSquares(const std::vector<double>& w, std::vector<double>* out) const;
  // See OtBackend::SparseHeaviestWeightedRows() and SparseGroupRowSums().
  void HeaviestWeightedRows(const std::vector<double>& weight,
                            std::vector<int32_t>* rows) const;
  void GroupRowSums(const std::vector<int32_t>& group, int size, std::vector<double>* q) const;

 private:
  // A buffer kept from step to step: a Newton step keeps about as many
  // entries as the last, and fresh pages cost a fault each (15 us on the
  // dev VM: 8 ms of a 10 ms step on 500 x 500 point clouds).
  template <typename T>
  struct Reused {
    HugePageArray<T> array;
    // Room for `size` entries, grown by a quarter beyond it when short.
    T* Hold(int64_t size) {
      if (array.size() < size) array = HugePageArray<T>(size + size / 4);
      return array.data();
    }
    // Room for `size` entries, the first `keep` of them kept.
    T* Grow(int64_t keep, int64_t size) {
      if (array.size() < size) {
        HugePageArray<T> larger(size + size / 2);
        std::copy(array.data(), array.data() + keep, larger.data());
        array = std::move(larger);
      }
      return array.data();
    }
  };

  // Where one thread's part of Build() keeps its entries, in row order.
  struct PartRows {
    Reused<int32_t>* cols;
    Reused<float>* values;
  };
  // Fills `part` with the kept entries of rows [begin, end) and counts[i]
  // with row i's number of them; returns how many it kept.
  int64_t KeepRows(int64_t begin, int64_t end, const KeepRule& rule,
                   const PlanRowFn& log_plan_row, const PlanRowFn& plan_row, int64_t* counts,
                   PartRows part) const;

  // The by-columns copy of the by-rows entries, on Build()'s parts.
  void Transpose(int64_t part_count);

  // Runs body over [0, count) outputs, on threads when there is enough work.
  void ForOutputs(int64_t count, const std::function<void(int64_t, int64_t)>& body) const;
  // out_k = sum of values[e] * in[index[e]] over e in [start[k], start[k+1]).
  void GatherAll(const std::vector<int64_t>& start, const int32_t* index, const float* values,
                 const std::vector<double>& in, std::vector<double>* out) const;

  int64_t n_ = 0, m_ = 0, entries_ = 0;
  int threads_ = 1;
  // By rows, then the same entries by columns; indices in 32 bits (n and m
  // are far below 2^31) and values in single precision to stream fewer
  // bytes per product.
  std::vector<int64_t> row_start_, col_start_;
  Reused<int32_t> row_col_, col_row_;
  Reused<int64_t> col_entry_;  // the by-rows index of each by-columns entry
  Reused<float> row_value_, col_value_;
  // Build()'s buffers for its parts after the first, kept for the next.
  std::vector<std::pair<Reused<int32_t>, Reused<float>>> part_buffers_;
};

}  // namespace solverd::ot::internal

#endif  // SOLVERD_KERNELS_OT_SPARSE_PLAN_MATRIX_H_
