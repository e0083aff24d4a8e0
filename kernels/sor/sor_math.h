// Per-row SOR math shared by the CPU and CUDA backends (host and device).
//
// One relaxed row update is the whole of an SOR sweep's arithmetic:
//   x_i <- (1 - omega) x_i + omega (b_i - sum_{j != i} a_ij x_j) / a_ii,
// reading the newest x_j, so the sweep order (natural or by colour) decides
// which values are new. The SSOR preconditioner of CG is one forward and one
// backward sweep from x = 0, so it needs nothing else.
//
// The backends store A with its rows in sweep order (SweepOrder::rows), so
// a colour's rows are contiguous in memory: `slot` is a row's place in that
// storage, `i` its index in A (and in x and b).
// Pure functions, safe from any thread and any kernel.
#ifndef SOLVERD_KERNELS_SOR_SOR_MATH_H_
#define SOLVERD_KERNELS_SOR_SOR_MATH_H_

#include <cstdint>

#include "common/host_device.h"

namespace solverd::sor {

// A's rows in sweep order; column indices and vectors keep A's numbering.
struct OrderedCsrView {
  const int64_t* row_ptr;  // by slot
  const int32_t* col_idx;
  const double* values;
  const int32_t* rows;     // slot -> row of A
};

SOLVERD_HD inline void RelaxRow(const OrderedCsrView& a, int64_t slot, const double* b,
                                double omega, double* x) {
  const int32_t i = a.rows[slot];
  double off_diagonal = 0;
  double diagonal = 1;
  for (int64_t k = a.row_ptr[slot]; k < a.row_ptr[slot + 1]; ++k) {
    const int32_t j = a.col_idx[k];
    if (j == i) {
      diagonal = a.values[k];
    } else {
      off_diagonal += a.values[k] * x[j];
    }
  }
  x[i] = (1 - omega) * x[i] + omega * (b[i] - off_diagonal) / diagonal;
}

SOLVERD_HD inline double RowProduct(const OrderedCsrView& a, int64_t slot, const double* x) {
  double ax = 0;
  for (int64_t k = a.row_ptr[slot]; k < a.row_ptr[slot + 1]; ++k) ax += a.values[k] * x[a.col_idx[k]];
  return ax;
}

}  // namespace solverd::sor

#endif  // SOLVERD_KERNELS_SOR_SOR_MATH_H_
