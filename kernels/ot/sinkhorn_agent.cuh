// Per-block device math of the CUDA Sinkhorn kernels: no host calls, no
// launches. Each function is what one block (or one thread) computes; the
// entry points in sinkhorn_cuda.cu are thin wrappers around these.
#ifndef SOLVERD_KERNELS_OT_SINKHORN_AGENT_CUH_
#define SOLVERD_KERNELS_OT_SINKHORN_AGENT_CUH_

#include <cub/block/block_reduce.cuh>

#include "ot/sinkhorn_math.h"

namespace solverd::ot::internal {

struct MergeLse {
  __device__ LogSumExp operator()(LogSumExp a, const LogSumExp& b) const {
    a.Merge(b);
    return a;
  }
};

struct AddPlanTerms {
  __device__ PlanTerms operator()(PlanTerms a, const PlanTerms& b) const {
    a.cost += b.cost;
    a.plogp += b.plogp;
    return a;
  }
};

// Log-sum-exp of eta (y_j - C_ij) over one row, reduced by a block of
// kThreads; the result is valid in thread 0.
template <int kThreads>
__device__ LogSumExp RowLse(const double* cost_row, const double* y, long m, double eta) {
  using Reduce = cub::BlockReduce<LogSumExp, kThreads>;
  __shared__ typename Reduce::TempStorage storage;
  LogSumExp acc;
  for (long j = threadIdx.x; j < m; j += kThreads) acc.Add(eta * (y[j] - cost_row[j]));
  return Reduce(storage).Reduce(acc, MergeLse());
}

// <C,P> and sum P log P over one row; valid in thread 0.
template <int kThreads>
__device__ PlanTerms RowPlanTerms(const double* cost_row, double x, const double* y,
                                  long m, double eta) {
  using Reduce = cub::BlockReduce<PlanTerms, kThreads>;
  __shared__ typename Reduce::TempStorage storage;
  PlanTerms acc;
  for (long j = threadIdx.x; j < m; j += kThreads) {
    acc.Add(LogPlan(eta, x, y[j], cost_row[j]), cost_row[j]);
  }
  return Reduce(storage).Reduce(acc, AddPlanTerms());
}

// sum_j P_ij over one row; valid in thread 0.
template <int kThreads>
__device__ double RowPlanSum(const double* cost_row, double x, const double* y, long m,
                             double eta) {
  using Reduce = cub::BlockReduce<double, kThreads>;
  __shared__ typename Reduce::TempStorage storage;
  double acc = 0;
  for (long j = threadIdx.x; j < m; j += kThreads) acc += exp(LogPlan(eta, x, y[j], cost_row[j]));
  return Reduce(storage).Sum(acc);
}

// Log-sum-exp of eta (x_i - C_ij) over rows [row_begin, row_end) of column j.
__device__ inline LogSumExp ColumnChunkLse(const double* cost, const double* x, long m,
                                           long j, long row_begin, long row_end,
                                           double eta) {
  LogSumExp acc;
  for (long i = row_begin; i < row_end; ++i) acc.Add(eta * (x[i] - cost[i * m + j]));
  return acc;
}

}  // namespace solverd::ot::internal

#endif  // SOLVERD_KERNELS_OT_SINKHORN_AGENT_CUH_
