// Entry points of the batched Sinkhorn kernels: the passes of ot_kernels.cuh
// over a stack of same-shape problems, the problem in the last grid
// dimension. Problem k's C starts at cost + k n m, its rows' vectors at
// k n, its columns' at k m; a problem whose active[k] is 0 is left as is.
// The per-row and per-column math is sinkhorn_agent.cuh's, as for one
// problem, so a problem gets the same iterates batched as alone. Launched
// only from ot_batch_cuda.cu. Internal.
// Device code without shared host state: thread-safe to launch from
// any lane on its own stream.
#ifndef SOLVERD_KERNELS_OT_OT_BATCH_KERNELS_CUH_
#define SOLVERD_KERNELS_OT_OT_BATCH_KERNELS_CUH_

#include <cstdint>

#include "ot/sinkhorn_agent.cuh"
#include "ot/sinkhorn_tuning.h"

namespace solverd::ot::internal {

// Grid (n, problems).
__global__ void __launch_bounds__(SinkhornTuning::kRowBlockThreads)
BatchRowPassKernel(const double* cost, const double* x, const double* y, const double* a,
                   long n, long m, const double* eta, const uint8_t* active, double* lse,
                   double* row_error) {
  const long k = blockIdx.y, i = k * n + blockIdx.x;
  if (!active[k]) return;
  LogSumExp acc = RowLse<SinkhornTuning::kRowBlockThreads>(cost + i * m, y + k * m, m, eta[k]);
  if (threadIdx.x == 0) {
    lse[i] = acc.value();
    row_error[i] = fabs(MarginalFromLse(x[i], lse[i], eta[k]) - a[i]);
  }
}

// One thread per problem: the sum of its n row (or column) values, in
// order (the order the single-problem backend sums them on the host).
__global__ void __launch_bounds__(SinkhornTuning::kElementwiseThreads)
BatchRowTotalKernel(const double* row_values, long n, long problems, const uint8_t* active,
                    double* totals) {
  const long k = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (k >= problems || !active[k]) return;
  double sum = 0;
  for (long i = 0; i < n; ++i) sum += row_values[k * n + i];
  totals[k] = sum;
}

// Grid (blocks over n, problems).
__global__ void __launch_bounds__(SinkhornTuning::kElementwiseThreads)
BatchUpdateRowsKernel(const double* a, const double* lse, long n, const double* eta,
                      const Relaxation* relaxation, const uint8_t* active, double* x) {
  const long k = blockIdx.y, r = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (r >= n || !active[k]) return;
  const long i = k * n + r;
  x[i] = RelaxedPotential(x[i], BalancedPotential(a[i], lse[i], eta[k]), eta[k], relaxation[k])
             .potential;
}

// Grid (blocks over m, row chunks, problems); partial is [problems][chunks][m].
__global__ void __launch_bounds__(SinkhornTuning::kColumnBlockThreads)
BatchColumnChunkKernel(const double* cost, const double* x, long n, long m, const double* eta,
                       const uint8_t* active, LogSumExp* partial) {
  const long k = blockIdx.z, j = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (j >= m || !active[k]) return;
  const long begin = blockIdx.y * static_cast<long>(SinkhornTuning::kColumnRowsPerChunk);
  const long end = min(n, begin + SinkhornTuning::kColumnRowsPerChunk);
  partial[(k * gridDim.y + blockIdx.y) * m + j] =
      ColumnChunkLse(cost + k * n * m, x + k * n, m, j, begin, end, eta[k]);
}

// Grid (blocks over m, problems).
__global__ void __launch_bounds__(SinkhornTuning::kElementwiseThreads)
BatchUpdateColumnsKernel(const LogSumExp* partial, const double* b, long m, long chunks,
                         const double* eta, const Relaxation* relaxation, const uint8_t* active,
                         double* y, double* column_error) {
  const long k = blockIdx.y, j = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (j >= m || !active[k]) return;
  LogSumExp acc;
  for (long c = 0; c < chunks; ++c) acc.Merge(partial[(k * chunks + c) * m + j]);
  const long e = k * m + j;
  const RelaxedStep step =
      RelaxedPotential(y[e], BalancedPotential(b[e], acc.value(), eta[k]), eta[k], relaxation[k]);
  y[e] = step.potential;
  column_error[e] = RelaxedMarginalError(b[e], step.log_ratio, step.factor);
}

// Grid (n, problems): each row's <C,P> and sum P log P.
__global__ void __launch_bounds__(SinkhornTuning::kRowBlockThreads)
BatchPlanTotalsKernel(const double* cost, const double* x, const double* y, long n, long m,
                      const double* eta, const uint8_t* active, double* row_cost,
                      double* row_plogp) {
  const long k = blockIdx.y, i = k * n + blockIdx.x;
  if (!active[k]) return;
  PlanTerms t = RowPlanTerms<SinkhornTuning::kRowBlockThreads>(cost + i * m, x[i], y + k * m,
                                                              m, eta[k]);
  if (threadIdx.x == 0) {
    row_cost[i] = t.cost;
    row_plogp[i] = t.plogp;
  }
}

}  // namespace solverd::ot::internal

#endif  // SOLVERD_KERNELS_OT_OT_BATCH_KERNELS_CUH_
