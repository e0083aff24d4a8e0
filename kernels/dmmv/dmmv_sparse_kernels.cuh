// DMMV's CUDA math for a sparse X, one thread per item: residual rows, move
// scores and per-instance move application, each a call of the shared
// per-move code in dmmv_sparse.h. Launch code is in dmmv_cuda_sparse.cu.
#ifndef SOLVERD_KERNELS_DMMV_DMMV_SPARSE_KERNELS_CUH_
#define SOLVERD_KERNELS_DMMV_DMMV_SPARSE_KERNELS_CUH_

#include <cstdint>

#include "dmmv/dmmv_sparse.h"

namespace solverd::dmmv::internal {

constexpr int kSparseThreads = 128;

// X on the device: rows (CSR) for residuals, columns (CSC) for moves.
struct DeviceSparseX {
  const int64_t* row_offsets;
  const int32_t* row_columns;
  const double* row_values;
  const int64_t* col_offsets;
  const int32_t* col_rows;
  const double* col_values;

  __device__ ColumnView Column(int32_t j) const {
    if (j < 0) return {};
    const int64_t begin = col_offsets[j];
    return {col_rows + begin, col_values + begin, col_offsets[j + 1] - begin};
  }
};

__global__ void SparseResidualKernel(DeviceSparseX x, int64_t rows, const double* values,
                                     const double* b, double* d) {
  const int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (k >= rows) return;
  d[k] = SparseRowResidual(x.row_offsets, x.row_columns, x.row_values, k, values, b[k]);
}

// Thread i scores moves[i]; `top` holds top_count worst rows per instance.
__global__ void SparseScoreKernel(DeviceSparseX x, const double* residual, const double* weights,
                                  int64_t rows, const int32_t* top, int64_t top_count,
                                  const double* total_squares, const Move* moves, int64_t count,
                                  MoveScore* scores) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= count) return;
  const Move m = moves[i];
  scores[i] = ScoreSparseMove(x.Column(m.var1), m.delta1, x.Column(m.var2), m.delta2,
                              residual + m.instance * rows, weights + m.instance * rows,
                              top + m.instance * top_count, top_count,
                              total_squares[m.instance]);
}

// Thread s applies segment s's moves, [first[s], first[s+1]), in order.
__global__ void SparseApplyKernel(DeviceSparseX x, double* residual, int64_t rows,
                                  const Move* moves, const int32_t* first, int64_t segments) {
  const int64_t s = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (s >= segments) return;
  for (int32_t i = first[s]; i < first[s + 1]; ++i) {
    const Move& m = moves[i];
    double* d = residual + m.instance * rows;
    ApplySparseColumn(x.Column(m.var1), m.delta1, d);
    ApplySparseColumn(x.Column(m.var2), m.delta2, d);
  }
}

}  // namespace solverd::dmmv::internal

#endif  // SOLVERD_KERNELS_DMMV_DMMV_SPARSE_KERNELS_CUH_
