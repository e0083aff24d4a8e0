// The least bytes an SOR sweep or a CSR SpMV must move (matrix once, its
// vectors once), shared by the CPU and GPU sor benchmarks so their
// bandwidth figures are comparable.
#ifndef SOLVERD_BENCH_SOR_THROUGHPUT_H_
#define SOLVERD_BENCH_SOR_THROUGHPUT_H_

#include "sor/csr.h"

namespace solverd::bench {

inline double CsrBytes(const solverd::sor::CsrMatrix& a) {
  return a.nnz() * 12.0 + (a.n + 1) * 8.0;  // values + col_idx, row_ptr
}
// x read and written, b read, the sweep order's row index read.
inline double SweepBytes(const solverd::sor::CsrMatrix& a) { return CsrBytes(a) + a.n * 28.0; }
// x read, y written.
inline double SpmvBytes(const solverd::sor::CsrMatrix& a) { return CsrBytes(a) + a.n * 16.0; }

}  // namespace solverd::bench

#endif  // SOLVERD_BENCH_SOR_THROUGHPUT_H_
