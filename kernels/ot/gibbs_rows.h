// The Gibbs kernel's row loops (gibbs_kernel.h), for K in double or single
// precision, each compiled for AVX2+FMA and the baseline (cpu_clones.h).
// Stateless functions, safe from any thread on disjoint outputs.
#ifndef SOLVERD_KERNELS_OT_GIBBS_ROWS_H_
#define SOLVERD_KERNELS_OT_GIBBS_ROWS_H_

#include <cstdint>

namespace solverd::ot::internal {

// Rows of K go kRowBlock at a time: their dot products with v share each
// load of v and run as independent sums, and their scaled sum goes into
// the column sums in one pass. A row at a time, the loads and stores of
// the two passes bounded an iteration, and each dot product waited on its
// multiply-adds' latency: 1.6x slower on the dev VM's EPYC.
inline constexpr int64_t kRowBlock = 4;

// sum_j K_ij v_j, sum_j K_ij v_j C_ij and sum_j K_ij vy_j for one row i.
struct RowTotals {
  double kv = 0, kvc = 0, kvy = 0;
};

// out[k] = K_k . v for the `count` (at most kRowBlock) rows from `rows`.
void BlockDots(const double* rows, int64_t count, int64_t m, const double* v, double* out);
void BlockDots(const float* rows, int64_t count, int64_t m, const double* v, double* out);
// into[j] += sum_k scales[k] K_kj over the `count` rows from `rows`.
void BlockAddScaled(const double* scales, const double* rows, int64_t count, int64_t m,
                    double* into);
void BlockAddScaled(const double* scales, const float* rows, int64_t count, int64_t m,
                    double* into);
// into[j] += sum_k scales[k] K_kj^2 over the `count` rows from `rows`.
void BlockAddScaledSquares(const double* scales, const double* rows, int64_t count, int64_t m,
                           double* into);
void BlockAddScaledSquares(const double* scales, const float* rows, int64_t count, int64_t m,
                           double* into);
// The columns of a row taken in runs: columns order[p] for p in
// [begin[t], begin[t + 1]) make run t of `runs`, entry p weighing
// weight[p].
struct ColumnRuns {
  const int32_t* order;
  const double* weight;
  const int64_t* begin;
  int runs;
};
// sums[k * runs + t] = sum over run t of K_k,order[p] weight[p] for the
// `count` rows from `rows`.
void BlockRunSums(const double* rows, int64_t count, int64_t m, const ColumnRuns& runs,
                  double* sums);
void BlockRunSums(const float* rows, int64_t count, int64_t m, const ColumnRuns& runs,
                  double* sums);
// The RowTotals of one row of K with its costs, v and vy.
RowTotals RowTotalsFor(const double* row, const double* cost_row, const double* v,
                       const double* vy, int64_t m);
RowTotals RowTotalsFor(const float* row, const double* cost_row, const double* v,
                       const double* vy, int64_t m);
// out[j] = u K_j v_j over one row.
void ScaledRow(double u, const double* row, const double* v, int64_t m, double* out);
void ScaledRow(double u, const float* row, const double* v, int64_t m, double* out);
// out[j] = exp(LogPlan(eta, xi, y_j, C_j)): a row of K built at potentials (xi, y).
void KernelRow(const double* cost_row, const double* y, int64_t m, double eta, double xi,
               double* out);
void KernelRow(const double* cost_row, const double* y, int64_t m, double eta, double xi,
               float* out);

}  // namespace solverd::ot::internal

#endif  // SOLVERD_KERNELS_OT_GIBBS_ROWS_H_
