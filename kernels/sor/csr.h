// CsrMatrix: a square sparse matrix in compressed sparse row form, the input
// of every sor solver, with the checks that make the sweeps safe to run.
//
// Column indices within a row are sorted and unique; every row stores its
// diagonal, which must be non-zero (SOR divides by it). Plain value type.
#ifndef SOLVERD_KERNELS_SOR_CSR_H_
#define SOLVERD_KERNELS_SOR_CSR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace solverd::sor {

struct CsrMatrix {
  int32_t n = 0;                 // rows = columns
  std::vector<int64_t> row_ptr;  // n + 1 offsets into col_idx / values
  std::vector<int32_t> col_idx;
  std::vector<double> values;

  int64_t nnz() const { return static_cast<int64_t>(col_idx.size()); }
};

// INVALID_ARGUMENT naming `field` and the first offending row/entry when the
// matrix is not square CSR with sorted unique in-range columns, finite values
// and a non-zero diagonal in every row.
Status ValidateCsr(const CsrMatrix& a, const std::string& field);

// True when A equals A^T to within `relative_tolerance` of the largest |a_ij|.
bool IsSymmetric(const CsrMatrix& a, double relative_tolerance = 1e-12);

// y = A x on `threads` threads.
void Multiply(const CsrMatrix& a, const double* x, double* y, int threads);

// The 5-point Laplacian stencil (4 on the diagonal, -1 to each grid
// neighbour) on an nx x ny interior grid, plus `shift` on the diagonal:
// the model problem of the tests and benchmarks.
CsrMatrix Laplacian2d(int32_t nx, int32_t ny, double shift = 0);

}  // namespace solverd::sor

#endif  // SOLVERD_KERNELS_SOR_CSR_H_
