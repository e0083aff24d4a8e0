// The kernels of SNS's conjugate gradient on the device (CudaOtBackend::
// SolveSchur): one CG iteration is a fixed sequence of launches that keep
// every vector and scalar on the device. Each kernel first reads the
// solve's `done` flag and returns when it is set, so the host queues
// iterations in runs and reads the flag once a run instead of once a step.
// The math of each step is schur_cg_math.h's, as in the host loop.
// Included by ot_cuda.cu alone. Internal. A solve's launches share its
// vectors and CgScalars: one host thread queues them, on one stream.
#ifndef SOLVERD_KERNELS_OT_SCHUR_CG_KERNELS_CUH_
#define SOLVERD_KERNELS_OT_SCHUR_CG_KERNELS_CUH_

#include <cub/block/block_reduce.cuh>

#include "ot/schur_cg_math.h"
#include "ot/sinkhorn_tuning.h"

namespace solverd::ot::internal {
namespace {

constexpr int kCgThreads = SinkhornTuning::kElementwiseThreads;
using CgReduce = cub::BlockReduce<double, kCgThreads>;

// Adds the block's sum of `value` to *total, one atomic add per block.
__device__ void AddBlockSum(double value, double* total) {
  __shared__ typename CgReduce::TempStorage storage;
  const double sum = CgReduce(storage).Sum(value);
  if (threadIdx.x == 0) atomicAdd(total, sum);
  __syncthreads();  // before the storage serves another sum
}

// Adds res_j to coarse_res[aggregate_j] (R r), where there is a coarse
// level and column j is in an aggregate.
__device__ void RestrictEntry(const int* aggregate, double res, long j, double* coarse_res) {
  if (aggregate != nullptr && aggregate[j] >= 0) atomicAdd(&coarse_res[aggregate[j]], res);
}

// x = 0, r = rhs, s->rr, and R r (coarse_res zeroed by the caller, null
// without a coarse level); CgPreconditionKernel then sets z and d.
__global__ void __launch_bounds__(kCgThreads)
CgStartKernel(const double* rhs, const int* aggregate, long m, double* x, double* res,
              double* coarse_res, CgScalars* s) {
  const long j = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  double rr = 0;
  if (j < m) {
    x[j] = 0;
    res[j] = rhs[j];
    rr = res[j] * res[j];
    RestrictEntry(aggregate, res[j], j, coarse_res);
  }
  AddBlockSum(rr, &s->rr);
}

// coarse_z = inverse coarse_res on the `size` aggregates, one block.
__global__ void __launch_bounds__(kCgThreads)
CgCoarseKernel(const double* inverse, const double* coarse_res, int size, const CgScalars* s,
               double* coarse_z) {
  if (s->done) return;
  for (int t = threadIdx.x; t < size; t += blockDim.x) {
    coarse_z[t] = CoarseEntry(inverse, coarse_res, size, t);
  }
}

// z = M^-1 r (PreconditionEntry()) and *rz += r . z; also d = z when
// `start` (the first direction).
__global__ void __launch_bounds__(kCgThreads)
CgPreconditionKernel(const double* inv_diag, const int* aggregate, const double* coarse_z,
                     const double* res, long m, bool start, double* z, double* dir,
                     CgScalars* s, double* rz) {
  if (s->done) return;
  const long j = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  double product = 0;
  if (j < m) {
    z[j] = PreconditionEntry(inv_diag[j], res[j], aggregate != nullptr ? aggregate[j] : -1,
                             coarse_z);
    if (start) dir[j] = z[j];
    product = res[j] * z[j];
  }
  AddBlockSum(product, rz);
}

// The target from the first residual, and whether the solve is over
// before its first step.
__global__ void CgCheckStartKernel(double relative_target, long long max_iterations,
                                   CgScalars* s) {
  CgSetTarget(relative_target, s);
  s->done = !CgContinues(*s, max_iterations);
}

// rows += Ps d over the kept entries (rows zeroed by the caller).
__global__ void __launch_bounds__(kCgThreads)
CgRowsKernel(const int* rows, const int* cols, const double* vals, long nnz, const double* dir,
             const CgScalars* s, double* out) {
  if (s->done) return;
  const long k = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (k < nnz) atomicAdd(&out[rows[k]], vals[k] * dir[cols[k]]);
}

// back += Ps^T diag(inv_dr) rows (back zeroed by the caller).
__global__ void __launch_bounds__(kCgThreads)
CgBackKernel(const int* rows, const int* cols, const double* vals, long nnz,
             const double* inv_dr, const double* row_values, const CgScalars* s, double* back) {
  if (s->done) return;
  const long k = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (k < nnz) atomicAdd(&back[cols[k]], vals[k] * inv_dr[rows[k]] * row_values[rows[k]]);
}

// S d from back, and s->curvature += d . S d (zeroed by CgNextKernel).
__global__ void __launch_bounds__(kCgThreads)
CgApplyKernel(const double* active, const double* dc, const double* dir, const double* back,
              long m, double* schur_dir, CgScalars* s) {
  if (s->done) return;
  const long j = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  double curvature = 0;
  if (j < m) {
    schur_dir[j] = SchurEntry(active[j], dc[j], dir[j], back[j]);
    curvature = dir[j] * schur_dir[j];
  }
  AddBlockSum(curvature, &s->curvature);
}

// The step length; ends the solve when S is not positive along d.
__global__ void CgStepLengthKernel(CgScalars* s) {
  if (s->done) return;
  s->rz_next = s->rr_next = 0;
  if (!CgStepLength(s)) s->done = 1;
}

// The step, entry by entry, the next r . r, and R r (as CgStartKernel).
__global__ void __launch_bounds__(kCgThreads)
CgStepKernel(const double* dir, const double* schur_dir, const int* aggregate, long m,
             double* x, double* res, double* coarse_res, CgScalars* s) {
  if (s->done) return;
  const long j = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  double rr = 0;
  if (j < m) {
    CgStepEntry(s->alpha, dir[j], schur_dir[j], &x[j], &res[j]);
    rr = res[j] * res[j];
    RestrictEntry(aggregate, res[j], j, coarse_res);
  }
  AddBlockSum(rr, &s->rr_next);
}

// Counts the step, keeps beta for CgDirectionKernel, and decides whether
// another step follows.
__global__ void CgNextKernel(long long max_iterations, CgScalars* s) {
  if (s->done) return;
  CgFinishStep(s);
  s->curvature = 0;
  s->done = !CgContinues(*s, max_iterations);
}

// d = z + beta d.
__global__ void __launch_bounds__(kCgThreads)
CgDirectionKernel(const double* z, long m, const CgScalars* s, double* dir) {
  if (s->done) return;
  const long j = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (j < m) dir[j] = z[j] + s->beta * dir[j];
}

}  // namespace
}  // namespace solverd::ot::internal

#endif  // SOLVERD_KERNELS_OT_SCHUR_CG_KERNELS_CUH_
