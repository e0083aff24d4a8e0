// Entry points of the CUDA ot kernels: thin wrappers that pick the row,
// column or entry a thread works on and call the per-block math in
// sinkhorn_agent.cuh. Launched from ot_cuda.cu and ot_batch_cuda.cu, each
// with its own copy (the unnamed namespace: without relocatable device
// code a __global__ defined in two translation units clashes). Internal.
#ifndef SOLVERD_KERNELS_OT_OT_KERNELS_CUH_
#define SOLVERD_KERNELS_OT_OT_KERNELS_CUH_

#include "ot/sinkhorn_agent.cuh"
#include "ot/sinkhorn_tuning.h"

namespace solverd::ot::internal {
namespace {

using Tuning = SinkhornTuning;

__global__ void __launch_bounds__(Tuning::kRowBlockThreads)
RowPassKernel(const double* cost, const double* x, const double* y, const double* a,
              long m, double eta, double* lse, double* row_error) {
  long i = blockIdx.x;
  LogSumExp acc = RowLse<Tuning::kRowBlockThreads>(cost + i * m, y, m, eta);
  if (threadIdx.x == 0) {
    lse[i] = acc.value();
    row_error[i] = fabs(MarginalFromLse(x[i], lse[i], eta) - a[i]);
  }
}

__global__ void __launch_bounds__(Tuning::kElementwiseThreads)
UpdateRowsKernel(const double* a, const double* lse, long n, double eta, Relaxation relaxation,
                 double* x) {
  long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (i < n) x[i] = RelaxedPotential(x[i], BalancedPotential(a[i], lse[i], eta), eta,
                                     relaxation).potential;
}

__global__ void __launch_bounds__(Tuning::kColumnBlockThreads)
ColumnChunkKernel(const double* cost, const double* x, long n, long m, double eta,
                  LogSumExp* partial) {
  long j = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (j >= m) return;
  long begin = blockIdx.y * static_cast<long>(Tuning::kColumnRowsPerChunk);
  long end = min(n, begin + Tuning::kColumnRowsPerChunk);
  partial[blockIdx.y * m + j] = ColumnChunkLse(cost, x, m, j, begin, end, eta);
}

__global__ void __launch_bounds__(Tuning::kElementwiseThreads)
UpdateColumnsKernel(const LogSumExp* partial, const double* b, long m, long chunks,
                    double eta, Relaxation relaxation, double* y, double* column_error) {
  long j = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (j >= m) return;
  LogSumExp acc;
  for (long c = 0; c < chunks; ++c) acc.Merge(partial[c * m + j]);
  const RelaxedStep step =
      RelaxedPotential(y[j], BalancedPotential(b[j], acc.value(), eta), eta, relaxation);
  y[j] = step.potential;
  column_error[j] = RelaxedMarginalError(b[j], step.log_ratio, step.factor);
}

__global__ void __launch_bounds__(Tuning::kRowBlockThreads)
PlanTotalsKernel(const double* cost, const double* x, const double* y, long m,
                 double eta, double* row_cost, double* row_plogp) {
  long i = blockIdx.x;
  PlanTerms t = RowPlanTerms<Tuning::kRowBlockThreads>(cost + i * m, x[i], y, m, eta);
  if (threadIdx.x == 0) {
    row_cost[i] = t.cost;
    row_plogp[i] = t.plogp;
  }
}

__global__ void __launch_bounds__(Tuning::kElementwiseThreads)
PlanKernel(const double* cost, const double* x, const double* y, long n, long m,
           double eta, double* plan) {
  long k = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (k < n * m) plan[k] = exp(LogPlan(eta, x[k / m], y[k % m], cost[k]));
}

__global__ void __launch_bounds__(Tuning::kRowBlockThreads)
PlanRowSumsKernel(const double* cost, const double* x, const double* y, long m, double eta,
                  double* r) {
  long i = blockIdx.x;
  double sum = RowPlanSum<Tuning::kRowBlockThreads>(cost + i * m, x[i], y, m, eta);
  if (threadIdx.x == 0) r[i] = sum;
}

__global__ void __launch_bounds__(Tuning::kColumnBlockThreads)
ColumnChunkSumKernel(const double* cost, const double* x, const double* y, long n, long m,
                     double eta, double* partial) {
  long j = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (j >= m) return;
  long begin = blockIdx.y * static_cast<long>(Tuning::kColumnRowsPerChunk);
  long end = min(n, begin + Tuning::kColumnRowsPerChunk);
  double sum = 0;
  for (long i = begin; i < end; ++i) sum += exp(LogPlan(eta, x[i], y[j], cost[i * m + j]));
  partial[blockIdx.y * m + j] = sum;
}

__global__ void __launch_bounds__(Tuning::kElementwiseThreads)
ColumnSumsKernel(const double* partial, long m, long chunks, double* c) {
  long j = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (j >= m) return;
  double sum = 0;
  for (long k = 0; k < chunks; ++k) sum += partial[k * m + j];
  c[j] = sum;
}

// Histogram of the entries' ranks (EntryRank by the log weights row_weight,
// col_weight) with their mass, block-local in shared memory, merged into
// `counts` and `masses` at the end.
__global__ void __launch_bounds__(Tuning::kElementwiseThreads)
LogPlanHistogramKernel(const double* cost, const double* x, const double* y,
                       const double* row_weight, const double* col_weight, long n, long m,
                       long row_stride, double eta, double lo, double scale,
                       unsigned long long* counts, double* masses) {
  __shared__ unsigned int local[Tuning::kHistogramBins];
  __shared__ double local_mass[Tuning::kHistogramBins];
  for (int b = threadIdx.x; b < Tuning::kHistogramBins; b += blockDim.x) {
    local[b] = 0;
    local_mass[b] = 0;
  }
  __syncthreads();
  for (long k = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; k < n * m;
       k += static_cast<long>(gridDim.x) * blockDim.x) {
    const long i = k / m, j = k % m;
    if (i % row_stride != 0) continue;
    const double lp = LogPlan(eta, x[i], y[j], cost[k]);
    const double rank = EntryRank(lp, row_weight[i], col_weight[j]);
    if (rank < lo) continue;
    int bin = HistogramBin(rank, lo, scale, Tuning::kHistogramBins);
    atomicAdd(&local[bin], 1u);
    atomicAdd(&local_mass[bin], exp(lp));
  }
  __syncthreads();
  for (int b = threadIdx.x; b < Tuning::kHistogramBins; b += blockDim.x) {
    if (local[b] == 0) continue;
    atomicAdd(&counts[b], static_cast<unsigned long long>(local[b]));
    atomicAdd(&masses[b], local_mass[b]);
  }
}

// Appends the entries ranked at or above threshold (EntryRank by the log
// weights row_weight, col_weight; by log P itself where they are null) to
// (rows, cols, vals); when `rows` is null only counts them.
__global__ void __launch_bounds__(Tuning::kElementwiseThreads)
CollectSparseKernel(const double* cost, const double* x, const double* y,
                    const double* row_weight, const double* col_weight, long n, long m,
                    double eta, double threshold, unsigned long long* count, int* rows,
                    int* cols, double* vals) {
  for (long k = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; k < n * m;
       k += static_cast<long>(gridDim.x) * blockDim.x) {
    const long i = k / m, j = k % m;
    const double lp = LogPlan(eta, x[i], y[j], cost[k]);
    const double rank = row_weight ? EntryRank(lp, row_weight[i], col_weight[j]) : lp;
    if (rank < threshold) continue;
    unsigned long long slot = atomicAdd(count, 1ull);
    if (rows != nullptr) {
      rows[slot] = static_cast<int>(i);
      cols[slot] = static_cast<int>(j);
      vals[slot] = exp(lp);
    }
  }
}

// vals[k] = P at (rows[k], cols[k]) at the current potentials; *sum += their
// total (zeroed by the caller), one atomic add per block.
__global__ void __launch_bounds__(Tuning::kElementwiseThreads)
RefreshSparseKernel(const double* cost, const double* x, const double* y, long m, double eta,
                    const int* rows, const int* cols, long nnz, double* vals, double* sum) {
  using Reduce = cub::BlockReduce<double, Tuning::kElementwiseThreads>;
  __shared__ typename Reduce::TempStorage storage;
  const long k = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  double value = 0;
  if (k < nnz) {
    value = exp(LogPlan(eta, x[rows[k]], y[cols[k]], cost[rows[k] * m + cols[k]]));
    vals[k] = value;
  }
  const double block_sum = Reduce(storage).Sum(value);
  if (threadIdx.x == 0) atomicAdd(sum, block_sum);
}

// out += Ps in, or Ps^T in when transpose; `out` zeroed by the caller.
__global__ void __launch_bounds__(Tuning::kElementwiseThreads)
SparseMultiplyKernel(const int* rows, const int* cols, const double* vals, long nnz,
                     bool transpose, const double* in, double* out) {
  long k = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (k >= nnz) return;
  const int from = transpose ? rows[k] : cols[k], to = transpose ? cols[k] : rows[k];
  atomicAdd(&out[to], vals[k] * in[from]);
}

__global__ void __launch_bounds__(Tuning::kElementwiseThreads)
SparseColumnSquaresKernel(const int* rows, const int* cols, const double* vals, long nnz,
                          const double* w, double* out) {
  long k = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (k < nnz) atomicAdd(&out[cols[k]], vals[k] * vals[k] * w[rows[k]]);
}

// Ps_ij weight[i] of entry k as ordered bits (positive doubles order as
// their bit patterns), 0 where the row's weight is not positive.
__device__ unsigned long long WeightedEntryKey(const int* rows, const double* vals,
                                               const double* weight, long k) {
  const double key = weight[rows[k]] > 0 ? vals[k] * weight[rows[k]] : 0.0;
  return key > 0 ? static_cast<unsigned long long>(__double_as_longlong(key)) : 0ull;
}

// best[j] = the largest WeightedEntryKey in column j (best zeroed by the
// caller).
__global__ void __launch_bounds__(Tuning::kElementwiseThreads)
ColumnBestKeyKernel(const int* rows, const int* cols, const double* vals, long nnz,
                    const double* weight, unsigned long long* best) {
  long k = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (k >= nnz) return;
  const unsigned long long key = WeightedEntryKey(rows, vals, weight, k);
  if (key > 0) atomicMax(&best[cols[k]], key);
}

// heaviest[j] = the last row whose entry holds column j's best key
// (heaviest set to -1 by the caller).
__global__ void __launch_bounds__(Tuning::kElementwiseThreads)
ColumnBestRowKernel(const int* rows, const int* cols, const double* vals, long nnz,
                    const double* weight, const unsigned long long* best, int* heaviest) {
  long k = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (k >= nnz) return;
  const unsigned long long key = WeightedEntryKey(rows, vals, weight, k);
  if (key > 0 && key == best[cols[k]]) atomicMax(&heaviest[cols[k]], rows[k]);
}

// q[i * size + group[j]] += Ps_ij (q zeroed by the caller).
__global__ void __launch_bounds__(Tuning::kElementwiseThreads)
GroupRowSumsKernel(const int* rows, const int* cols, const double* vals, long nnz,
                   const int* group, int size, double* q) {
  long k = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (k >= nnz) return;
  const int t = group[cols[k]];
  if (t >= 0) atomicAdd(&q[static_cast<long>(rows[k]) * size + t], vals[k]);
}

}  // namespace
}  // namespace solverd::ot::internal

#endif  // SOLVERD_KERNELS_OT_OT_KERNELS_CUH_
