// The quant family's CUDA kernels: thin __global__ entry points over the
// per-element math of quant_math.h and gptq_math.h (the same functions the
// CPU backend runs). Launch code lives in quant_cuda.cu.
// Device code without shared host state: thread-safe to launch from
// any lane on its own stream.
#ifndef SOLVERD_KERNELS_QUANT_QUANT_KERNELS_CUH_
#define SOLVERD_KERNELS_QUANT_QUANT_KERNELS_CUH_

#include <cstdint>

#include "quant/gptq_math.h"
#include "quant/hqq_math.h"
#include "quant/kquant_math.h"
#include "quant/quant_math.h"

namespace solverd::quant::internal {

inline constexpr int kQuantThreads = 256;  // threads per block of every kernel

// One thread per (row, group): `quantize` (RtnGroup or HqqGroup) chooses
// the group's grid and writes its codes.
template <typename GroupQuantizer>
__global__ void GroupKernel(const float* weights, int64_t rows, int64_t cols, int64_t group,
                            GroupQuantizer quantize, float* scales, float* zeros,
                            uint8_t* codes) {
  const int64_t groups = (cols + group - 1) / group;
  const int64_t id = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (id >= rows * groups) return;
  const int64_t r = id / groups, c0 = (id % groups) * group;
  const int n = static_cast<int>(cols - c0 < group ? cols - c0 : group);
  const Grid g = quantize(weights + r * cols + c0, n, codes + r * cols + c0);
  scales[id] = g.scale;
  zeros[id] = g.zero;
}

// StagedGroupKernel's shared memory per thread: its group of weights with
// one float of padding (so a warp's threads read different banks while each
// walks its own group) and its codes with four bytes of padding.
__host__ __device__ inline int64_t StagedBytesPerThread(int64_t group) {
  return (group + 1) * static_cast<int64_t>(sizeof(float)) + group + 4;
}

// GroupKernel for layers of whole groups (cols a multiple of `group`): the
// cells of a block then cover one contiguous range of weights, which the
// block loads, and whose codes it stores, coalesced through shared memory;
// each thread runs the same serial group math on its own staged slice.
// Dynamic shared memory: blockDim.x * StagedBytesPerThread(group).
template <typename GroupQuantizer>
__global__ void StagedGroupKernel(const float* weights, int64_t cells, int group,
                                  GroupQuantizer quantize, float* scales, float* zeros,
                                  uint8_t* codes) {
  extern __shared__ float staged[];
  const int weight_stride = group + 1, code_stride = group + 4;
  uint8_t* staged_codes = reinterpret_cast<uint8_t*>(staged + blockDim.x * weight_stride);
  const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x);
  const int count = static_cast<int>(cells - first < blockDim.x ? cells - first : blockDim.x);
  const float* source = weights + first * group;
  for (int e = threadIdx.x; e < count * group; e += blockDim.x) {
    staged[(e / group) * weight_stride + e % group] = source[e];
  }
  __syncthreads();
  if (threadIdx.x < count) {
    const Grid g = quantize(staged + threadIdx.x * weight_stride, group,
                            staged_codes + threadIdx.x * code_stride);
    scales[first + threadIdx.x] = g.scale;
    zeros[first + threadIdx.x] = g.zero;
  }
  __syncthreads();
  uint8_t* target = codes + first * group;
  for (int e = threadIdx.x; e < count * group; e += blockDim.x) {
    target[e] = staged_codes[(e / group) * code_stride + e % group];
  }
}

// Where a grid layer's per-group and per-super-block values go on the
// device (offsets and the super-block arrays only for K-quant grids).
struct DeviceGrids {
  float* scales;
  float* zeros;
  float* offsets;
  float* super_scales;
  float* super_mins;
  uint8_t* codes;
};

// Stores the grids ChooseKSuperBlock gave super-block `super` (a row's
// super-blocks are consecutive, as are the groups of each).
__device__ inline void StoreKGrids(const DeviceGrids& out, int64_t super, int bits,
                                   const Grid* grids, float d, float dmin) {
  const int groups = KGroups(bits);
  for (int g = 0; g < groups; ++g) {
    out.scales[super * groups + g] = grids[g].scale;
    out.zeros[super * groups + g] = grids[g].zero;
    out.offsets[super * groups + g] = grids[g].offset;
  }
  out.super_scales[super] = d;
  out.super_mins[super] = dmin;
}

// One thread per K-quant super-block of 256 weights (rows are whole
// super-blocks): round to nearest on its grids.
__global__ void KSuperBlockKernel(const float* weights, int64_t supers, int bits,
                                  DeviceGrids out) {
  const int64_t id = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (id >= supers) return;
  Grid grids[kMaxKGroups];
  float d, dmin;
  QuantizeKSuperBlock(weights + id * kSuperBlock, bits, grids, &d, &dmin,
                      out.codes + id * kSuperBlock);
  StoreKGrids(out, id, bits, grids, d, dmin);
}

// One thread per block of `block` weights: its absmax.
__global__ void AbsmaxKernel(const float* weights, int64_t n, int64_t block, float* absmax) {
  const int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (b * block >= n) return;
  float a = 0;
  const int64_t end = (b + 1) * block < n ? (b + 1) * block : n;
  for (int64_t i = b * block; i < end; ++i) a = fmaxf(a, fabsf(weights[i]));
  absmax[b] = a;
}

// One thread per weight: the nearest code-book entry of w / absmax.
__global__ void BlockwiseCodeKernel(const float* weights, int64_t n, int64_t block,
                                    const float* absmax, const float* book, int book_size,
                                    uint8_t* codes) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float a = absmax[i / block];
  const float x = a > 0 ? weights[i] / a : 0.0f;
  codes[i] = static_cast<uint8_t>(NearestCode(x, book, book_size));
}

// One thread per entry (a, b), b <= a, of H = scale * X^T X (X row-major,
// tokens x cols); neighbouring threads read neighbouring columns.
__global__ void HessianKernel(const float* x, int64_t tokens, int64_t cols, double scale,
                              double* h) {
  const int64_t a = blockIdx.y;
  const int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (b > a) return;
  h[a * cols + b] = HessianDot(x + a, x + b, tokens, cols) * scale;
}

// One thread per entry (a, b) of sum_k x_k y_k^T (both row-major, tokens x
// cols), summed as SumOfCrossProducts() sums.
__global__ void CrossProductKernel(const float* x, const float* y, int64_t tokens,
                                   int64_t cols, double* out) {
  const int64_t a = blockIdx.y;
  const int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (b >= cols) return;
  out[a * cols + b] = HessianDot(x + a, y + b, tokens, cols);
}

// One block per row: the row's weights (`work`, in processing order) are
// rounded column by column, each error fed back into the later columns by
// all threads of the block. order[j] is the column at position j. With
// static groups the grids are given; otherwise thread 0 chooses each
// group's grid (each K-quant super-block's grids) from the updated weights
// when it starts.
__global__ void GptqRowKernel(float* work, int64_t cols, const float* u, const int64_t* order,
                              int64_t group, int bits, bool symmetric, bool clip_search,
                              bool k_quant, bool static_groups, DeviceGrids out) {
  const int64_t r = blockIdx.x;
  const int64_t groups = (cols + group - 1) / group;
  float* w = work + r * cols;
  __shared__ float err;
  for (int64_t j = 0; j < cols; ++j) {
    if (threadIdx.x == 0) {
      const int64_t col = order[j];
      const int64_t g = r * groups + col / group;
      if (!static_groups && k_quant && j % kSuperBlock == 0) {
        Grid grids[kMaxKGroups];
        float d, dmin;
        ChooseKSuperBlock(w + j, bits, grids, &d, &dmin);
        StoreKGrids(out, (r * cols + j) / kSuperBlock, bits, grids, d, dmin);
      } else if (!static_groups && !k_quant && j % group == 0) {
        const int n = static_cast<int>(cols - j < group ? cols - j : group);
        const Grid chosen = ChooseGrid(w + j, n, 1, bits, symmetric, clip_search);
        out.scales[g] = chosen.scale;
        out.zeros[g] = chosen.zero;
      }
      Grid grid;
      grid.scale = out.scales[g];
      grid.zero = out.zeros[g];
      if (k_quant) grid.offset = out.offsets[g];
      grid.maxq = (1 << bits) - 1;
      const int code = CodeOf(w[j], grid);
      out.codes[r * cols + col] = static_cast<uint8_t>(code);
      err = FeedbackError(w[j], Dequantize(code, grid), u[j * cols + j]);
    }
    __syncthreads();
    const float e = err;
    for (int64_t k = j + 1 + threadIdx.x; k < cols; k += blockDim.x) {
      w[k] = Feedback(w[k], e, u[j * cols + k]);
    }
    __syncthreads();
  }
}

}  // namespace solverd::quant::internal

#endif  // SOLVERD_KERNELS_QUANT_QUANT_KERNELS_CUH_
