// Per-row SOR math shared by the CPU and CUDA backends (host and device).
//
// One relaxed row update is the whole of an SOR sweep's arithmetic:
//   x_i <- (1 - omega) x_i + omega (b_i - sum_{j != i} a_ij x_j) / a_ii,
// reading the newest x_j, so the sweep order (natural or by colour) decides
// which values are new. The SSOR preconditioner of CG is one forward and one
// backward sweep from x = 0, so it needs nothing else.
#ifndef SOLVERD_KERNELS_SOR_SOR_MATH_H_
#define SOLVERD_KERNELS_SOR_SOR_MATH_H_

#include <cstdint>

#include "common/host_device.h"

namespace solverd::sor {

SOLVERD_HD inline void RelaxRow(const int64_t* row_ptr, const int32_t* col_idx,
                                         const double* values, const double* b, double omega,
                                         int32_t i, double* x) {
  double off_diagonal = 0;
  double diagonal = 1;
  for (int64_t k = row_ptr[i]; k < row_ptr[i + 1]; ++k) {
    const int32_t j = col_idx[k];
    if (j == i) {
      diagonal = values[k];
    } else {
      off_diagonal += values[k] * x[j];
    }
  }
  x[i] = (1 - omega) * x[i] + omega * (b[i] - off_diagonal) / diagonal;
}

SOLVERD_HD inline double RowResidual(const int64_t* row_ptr, const int32_t* col_idx,
                                              const double* values, const double* b,
                                              const double* x, int32_t i) {
  double ax = 0;
  for (int64_t k = row_ptr[i]; k < row_ptr[i + 1]; ++k) ax += values[k] * x[col_idx[k]];
  return b[i] - ax;
}

}  // namespace solverd::sor

#endif  // SOLVERD_KERNELS_SOR_SOR_MATH_H_
