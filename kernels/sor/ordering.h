// SweepOrder: the order in which an SOR sweep visits the rows of A.
//
// Natural ordering visits 0, 1, ..., n-1 one after another: exact
// sequential SOR, CPU only. Multicolour ordering groups rows into colours
// such that no two rows of one colour are coupled in A (a greedy colouring
// of A's symmetrised pattern: red-black for 5- and 7-point stencils), so a
// colour's rows update in parallel on CPU threads or one GPU kernel; it is
// SOR exactly, for A with its rows permuted colour by colour.
// Build once per sparsity pattern and reuse across a sequence of systems.
#ifndef SOLVERD_KERNELS_SOR_ORDERING_H_
#define SOLVERD_KERNELS_SOR_ORDERING_H_

#include <cstdint>
#include <vector>

#include "sor/csr.h"

namespace solverd::sor {

struct SweepOrder {
  // Groups in sweep order: group g is rows[group_ptr[g] .. group_ptr[g+1]).
  std::vector<int32_t> rows;
  std::vector<int64_t> group_ptr;
  // True when a group's rows are uncoupled (colours), false when the one
  // group must be visited in order (natural ordering).
  bool parallel = false;

  int64_t groups() const { return static_cast<int64_t>(group_ptr.size()) - 1; }
};

SweepOrder NaturalOrder(int32_t n);
SweepOrder MulticolorOrder(const CsrMatrix& a);

// A with its rows stored in sweep order (row k of the result is row
// order.rows[k] of A; column indices unchanged), so a colour's rows are
// contiguous and a sweep reads the matrix once.
CsrMatrix RowsInSweepOrder(const CsrMatrix& a, const SweepOrder& order);
// Only A's values in that layout: for the other systems of a batch, whose
// shared pattern has been reordered once.
std::vector<double> ValuesInSweepOrder(const CsrMatrix& a, const SweepOrder& order);

// True when both matrices have the same row_ptr and col_idx (so one
// SweepOrder serves both).
bool SamePattern(const CsrMatrix& a, const CsrMatrix& b);

}  // namespace solverd::sor

#endif  // SOLVERD_KERNELS_SOR_ORDERING_H_
