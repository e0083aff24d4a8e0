#include "sor/csr.h"

#include <algorithm>
#include <cmath>

#include "common/parallel_for.h"

namespace solverd::sor {
namespace {

std::string Where(const std::string& field, int64_t row) {
  return field + ": row " + std::to_string(row);
}

// The value of a_ij, or 0 when row i does not store column j.
double Entry(const CsrMatrix& a, int32_t i, int32_t j) {
  const int32_t* begin = a.col_idx.data() + a.row_ptr[i];
  const int32_t* end = a.col_idx.data() + a.row_ptr[i + 1];
  const int32_t* it = std::lower_bound(begin, end, j);
  return (it != end && *it == j) ? a.values[it - a.col_idx.data()] : 0.0;
}

}  // namespace

Status ValidateCsr(const CsrMatrix& a, const std::string& field) {
  if (a.n <= 0) return InvalidArgument(field + ": the matrix has no rows");
  if (a.row_ptr.size() != static_cast<size_t>(a.n) + 1) {
    return InvalidArgument(field + ".row_ptr: has " + std::to_string(a.row_ptr.size()) +
                           " entries, want rows + 1 = " + std::to_string(a.n + 1));
  }
  if (a.row_ptr.front() != 0) return InvalidArgument(field + ".row_ptr: must start at 0");
  if (a.col_idx.size() != a.values.size()) {
    return InvalidArgument(field + ": col_idx and values differ in length");
  }
  if (a.row_ptr.back() != a.nnz()) {
    return InvalidArgument(field + ".row_ptr: last entry " + std::to_string(a.row_ptr.back()) +
                           " is not the number of entries " + std::to_string(a.nnz()));
  }
  for (int32_t i = 0; i < a.n; ++i) {
    if (a.row_ptr[i + 1] < a.row_ptr[i]) {
      return InvalidArgument(field + ".row_ptr: decreases at row " + std::to_string(i));
    }
    bool has_diagonal = false;
    for (int64_t k = a.row_ptr[i]; k < a.row_ptr[i + 1]; ++k) {
      const int32_t j = a.col_idx[k];
      if (j < 0 || j >= a.n) {
        return InvalidArgument(Where(field, i) + ": column " + std::to_string(j) +
                               " is out of range [0, " + std::to_string(a.n) + ")");
      }
      if (k > a.row_ptr[i] && j <= a.col_idx[k - 1]) {
        return InvalidArgument(Where(field, i) + ": columns are not sorted and unique");
      }
      if (!std::isfinite(a.values[k])) {
        return InvalidArgument(Where(field, i) + ": value at column " + std::to_string(j) +
                               " is not finite");
      }
      if (j == i) has_diagonal = a.values[k] != 0.0;
    }
    if (!has_diagonal) return InvalidArgument(Where(field, i) + ": zero diagonal");
  }
  return Status::Ok();
}

bool IsSymmetric(const CsrMatrix& a, double relative_tolerance) {
  double scale = 0;
  for (double v : a.values) scale = std::max(scale, std::abs(v));
  const double tol = relative_tolerance * scale;
  for (int32_t i = 0; i < a.n; ++i) {
    for (int64_t k = a.row_ptr[i]; k < a.row_ptr[i + 1]; ++k) {
      if (std::abs(a.values[k] - Entry(a, a.col_idx[k], i)) > tol) return false;
    }
  }
  return true;
}

void Multiply(const CsrMatrix& a, const double* x, double* y, int threads) {
  ParallelFor(a.n, threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      double sum = 0;
      for (int64_t k = a.row_ptr[i]; k < a.row_ptr[i + 1]; ++k) sum += a.values[k] * x[a.col_idx[k]];
      y[i] = sum;
    }
  }, /*min_items_per_thread=*/4096);
}

CsrMatrix Laplacian2d(int32_t nx, int32_t ny, double shift) {
  CsrMatrix a;
  a.n = nx * ny;
  a.row_ptr.reserve(a.n + 1);
  a.row_ptr.push_back(0);
  for (int32_t r = 0; r < ny; ++r) {
    for (int32_t c = 0; c < nx; ++c) {
      const int32_t i = r * nx + c;
      auto add = [&](int32_t j, double v) { a.col_idx.push_back(j); a.values.push_back(v); };
      if (r > 0) add(i - nx, -1);
      if (c > 0) add(i - 1, -1);
      add(i, 4 + shift);
      if (c + 1 < nx) add(i + 1, -1);
      if (r + 1 < ny) add(i + nx, -1);
      a.row_ptr.push_back(a.nnz());
    }
  }
  return a;
}

}  // namespace solverd::sor
