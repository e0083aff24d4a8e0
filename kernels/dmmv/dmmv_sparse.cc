#include "dmmv/dmmv_sparse.h"

#include <algorithm>
#include <numeric>

namespace solverd::dmmv::internal {

CscMatrix ToColumns(const Problem& problem) {
  const CsrMatrix& a = problem.x_csr;
  CscMatrix c;
  c.col_offsets.assign(static_cast<size_t>(problem.cols) + 1, 0);
  for (int32_t j : a.columns) ++c.col_offsets[j + 1];
  for (int64_t j = 0; j < problem.cols; ++j) {
    c.longest_column = std::max(c.longest_column, c.col_offsets[j + 1]);
    c.col_offsets[j + 1] += c.col_offsets[j];
  }
  c.rows.resize(a.columns.size());
  c.values.resize(a.values.size());
  std::vector<int64_t> next(c.col_offsets.begin(), c.col_offsets.end() - 1);
  for (int64_t k = 0; k < problem.rows; ++k) {  // rows in order: each column's rows increase
    for (int64_t e = a.row_offsets[k]; e < a.row_offsets[k + 1]; ++e) {
      const int64_t at = next[a.columns[e]]++;
      c.rows[at] = static_cast<int32_t>(k);
      c.values[at] = a.values[e];
    }
  }
  return c;
}

int64_t TopRowCount(int64_t rows, const CscMatrix& columns) {
  return std::min(rows, 2 * columns.longest_column + 1);
}

void TopRows(const double* d, const double* w, int64_t rows, int64_t count,
             std::vector<int32_t>* top) {
  std::vector<int32_t> order(static_cast<size_t>(rows));
  std::iota(order.begin(), order.end(), 0);
  auto worse = [&](int32_t a, int32_t b) {
    const double va = w[a] * Abs(d[a]), vb = w[b] * Abs(d[b]);
    return va > vb || (va == vb && a < b);
  };
  std::nth_element(order.begin(), order.begin() + (count - 1), order.end(), worse);
  std::sort(order.begin(), order.begin() + count, worse);
  top->assign(order.begin(), order.begin() + count);
}

double SumSquares(const double* d, const double* w, int64_t rows) {
  double sum = 0;
  for (int64_t k = 0; k < rows; ++k) {
    const double v = w[k] * Abs(d[k]);
    sum += v * v;
  }
  return sum;
}

}  // namespace solverd::dmmv::internal
