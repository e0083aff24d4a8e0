// DMMV on a sparse X (tomography's projectors: each variable touches a few
// rows). A move then changes only its columns' rows, so it is scored in
// O(entries) rather than O(N): the moved rows exactly, every other row by
// the largest untouched row among the current worst ones, and the sum of
// squares as the instance's total plus the touched rows' change. Keeping
// 2 * (longest column) + 1 worst rows guarantees an untouched one for any
// single or pair move, so the score is exact.
//
// The per-move functions are SOLVERD_HD: the CPU backend and the CUDA
// kernels run the same code and round alike.
// Pure functions over caller-owned state: thread-safe as long as
// threads do not share one instance's buffers.
#ifndef SOLVERD_KERNELS_DMMV_DMMV_SPARSE_H_
#define SOLVERD_KERNELS_DMMV_DMMV_SPARSE_H_

#include <cstdint>
#include <vector>

#include "common/host_device.h"
#include "dmmv/dmmv.h"
#include "dmmv/dmmv_backend.h"
#include "dmmv/dmmv_math.h"

namespace solverd::dmmv::internal {

// X by columns: column j's rows (increasing) and values at
// [col_offsets[j], col_offsets[j+1]).
struct CscMatrix {
  std::vector<int64_t> col_offsets;
  std::vector<int32_t> rows;
  std::vector<double> values;
  int64_t longest_column = 0;
};

CscMatrix ToColumns(const Problem& problem);  // problem.sparse() must hold

// How many worst rows a backend keeps per instance (see the file comment).
int64_t TopRowCount(int64_t rows, const CscMatrix& columns);

// The `count` rows with the largest w_k |d_k|, largest first (ties: the
// lower row first, so that every backend picks the same rows).
void TopRows(const double* d, const double* w, int64_t rows, int64_t count,
             std::vector<int32_t>* top);

// sum_k (w_k d_k)^2 in row order.
double SumSquares(const double* d, const double* w, int64_t rows);

struct ColumnView {
  const int32_t* rows = nullptr;
  const double* values = nullptr;
  int64_t count = 0;
};

SOLVERD_HD inline bool ColumnHasRow(const ColumnView& c, int32_t row) {
  int64_t lo = 0, hi = c.count;
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (c.rows[mid] < row) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo < c.count && c.rows[lo] == row;
}

// The score of moving column c1 by delta1 and c2 (count 0 for a single
// move) by delta2, given the instance's residual d, weights w, its worst
// rows `top` (largest first) and total sum of squares.
SOLVERD_HD inline MoveScore ScoreSparseMove(const ColumnView& c1, double delta1,
                                            const ColumnView& c2, double delta2, const double* d,
                                            const double* w, const int32_t* top,
                                            int64_t top_count, double total_squares) {
  double touched_max = 0, change = 0;
  int64_t i1 = 0, i2 = 0;
  while (i1 < c1.count || i2 < c2.count) {
    const int32_t r1 = i1 < c1.count ? c1.rows[i1] : INT32_MAX;
    const int32_t r2 = i2 < c2.count ? c2.rows[i2] : INT32_MAX;
    const int32_t row = r1 < r2 ? r1 : r2;
    const double x1 = row == r1 ? c1.values[i1++] : 0.0;
    const double x2 = row == r2 ? c2.values[i2++] : 0.0;
    const double before = w[row] * Abs(d[row]);
    const double after = w[row] * Abs(MovedResidual(d[row], x1, delta1, x2, delta2));
    touched_max = after > touched_max ? after : touched_max;
    change = MulAdd(-before, before, MulAdd(after, after, change));  // no FMA: alike everywhere
  }
  double untouched_max = 0;
  for (int64_t i = 0; i < top_count; ++i) {
    const int32_t row = top[i];
    if (!ColumnHasRow(c1, row) && !ColumnHasRow(c2, row)) {
      untouched_max = w[row] * Abs(d[row]);
      break;
    }
  }
  MoveScore s;
  s.max_violation = touched_max > untouched_max ? touched_max : untouched_max;
  s.sum_squares = total_squares + change;
  return s;
}

// d += delta * column c.
SOLVERD_HD inline void ApplySparseColumn(const ColumnView& c, double delta, double* d) {
  for (int64_t i = 0; i < c.count; ++i) d[c.rows[i]] = MulAdd(delta, c.values[i], d[c.rows[i]]);
}

// (X values - b)_k from X's CSR row k, columns in order.
SOLVERD_HD inline double SparseRowResidual(const int64_t* row_offsets, const int32_t* columns,
                                           const double* x, int64_t k, const double* values,
                                           double b) {
  double acc = 0;
  for (int64_t e = row_offsets[k]; e < row_offsets[k + 1]; ++e) {
    acc = MulAdd(x[e], values[columns[e]], acc);
  }
  return acc - b;
}

}  // namespace solverd::dmmv::internal

#endif  // SOLVERD_KERNELS_DMMV_DMMV_SPARSE_H_
