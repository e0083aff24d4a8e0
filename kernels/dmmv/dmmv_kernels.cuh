// DMMV's per-block CUDA math: residuals from values, move scoring (one
// block per move, a max and a sum of squares reduced over the rows) and
// move application. Launch code is in dmmv_cuda.cu.
// Device code without shared host state: thread-safe to launch from
// any lane on its own stream.
#ifndef SOLVERD_KERNELS_DMMV_DMMV_KERNELS_CUH_
#define SOLVERD_KERNELS_DMMV_DMMV_KERNELS_CUH_

#include <cstdint>

#include "dmmv/dmmv_backend.h"
#include "dmmv/dmmv_math.h"

namespace solverd::dmmv::internal {

constexpr int kScoreThreads = 256;
constexpr int kRowThreads = 256;

// d = X values - b for one instance; one thread per row, columns in order
// (the CPU backend's order), so both backends round alike.
__global__ void ResidualKernel(const double* columns, int64_t rows, int64_t cols,
                               const double* values, const double* b, double* d) {
  const int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (k >= rows) return;
  double acc = 0;
  for (int64_t j = 0; j < cols; ++j) acc = MulAdd(columns[j * rows + k], values[j], acc);
  d[k] = __dadd_rn(acc, -b[k]);
}

// Block i scores moves[i] over all rows of its instance.
__global__ void ScoreKernel(const double* columns, const double* residual, const double* weights,
                            int64_t rows, const Move* moves, MoveScore* scores) {
  __shared__ double max_part[kScoreThreads];
  __shared__ double sum_part[kScoreThreads];
  const Move m = moves[blockIdx.x];
  const double* d = residual + m.instance * rows;
  const double* w = weights + m.instance * rows;
  const double* x1 = columns + m.var1 * rows;
  const double* x2 = m.var2 >= 0 ? columns + m.var2 * rows : nullptr;
  double max_v = 0, sum = 0;
  for (int64_t k = threadIdx.x; k < rows; k += blockDim.x) {
    const double moved = MovedResidual(d[k], x1[k], m.delta1, x2 ? x2[k] : 0.0, x2 ? m.delta2 : 0.0);
    const double v = w[k] * Abs(moved);
    max_v = v > max_v ? v : max_v;
    sum += v * v;
  }
  max_part[threadIdx.x] = max_v;
  sum_part[threadIdx.x] = sum;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      const double other = max_part[threadIdx.x + half];
      if (other > max_part[threadIdx.x]) max_part[threadIdx.x] = other;
      sum_part[threadIdx.x] += sum_part[threadIdx.x + half];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) scores[blockIdx.x] = {max_part[0], sum_part[0]};
}

// Applies moves[first[s] .. first[s+1]) in order; blockIdx.y is the segment
// s (all of one instance), x the rows.
__global__ void ApplyKernel(const double* columns, double* residual, int64_t rows,
                            const Move* moves, const int32_t* first) {
  const int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (k >= rows) return;
  const int32_t begin = first[blockIdx.y], end = first[blockIdx.y + 1];
  double* d = residual + moves[begin].instance * rows;
  double value = d[k];
  for (int32_t i = begin; i < end; ++i) {
    const Move& m = moves[i];
    const double* x2 = m.var2 >= 0 ? columns + m.var2 * rows : nullptr;
    value = MovedResidual(value, columns[m.var1 * rows + k], m.delta1, x2 ? x2[k] : 0.0,
                          x2 ? m.delta2 : 0.0);
  }
  d[k] = value;
}

}  // namespace solverd::dmmv::internal

#endif  // SOLVERD_KERNELS_DMMV_DMMV_KERNELS_CUH_
