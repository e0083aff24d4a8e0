// The CPU backend's row loops in the log domain: a row of the plan P_ij =
// exp(LogPlan(eta, x_i, y_j, C_ij)) from C and the potentials, an exp per
// entry (where the cached Gibbs kernel does not serve), each compiled for
// AVX2+FMA and the baseline (cpu_clones.h).
// Stateless functions, safe from any thread on disjoint outputs.
#ifndef SOLVERD_KERNELS_OT_LOG_PLAN_ROWS_H_
#define SOLVERD_KERNELS_OT_LOG_PLAN_ROWS_H_

#include <cstdint>

#include "ot/sinkhorn_math.h"

namespace solverd::ot::internal {

// sum_j P_ij for row i with potential xi.
double RowPlanSum(const double* cost_row, const double* y, int64_t m, double eta, double xi);

// As RowPlanSum, also adding each P_ij to col[j].
double RowPlanAccumulate(const double* cost_row, const double* y, int64_t m, double eta,
                         double xi, double* col);

// out_j = log P_ij for row i with potential xi.
void LogPlanRow(const double* cost_row, const double* y, int64_t m, double eta, double xi,
                double* out);

// plan[j] = exp(log_plan[j]).
void ExpRow(const double* log_plan, int64_t m, double* plan);

// out[k] = P_ij for j = columns[k], k < count, in row i with potential xi.
void PlanAtColumns(const double* cost_row, const double* y, double eta, double xi,
                   const int32_t* columns, int64_t count, double* out);

// PlanTerms of one row from its log P and P (P = 0 where log P < -708:
// those entries add nothing at double precision).
PlanTerms RowPlanTerms(const double* cost_row, const double* log_plan, const double* plan,
                       int64_t m);

}  // namespace solverd::ot::internal

#endif  // SOLVERD_KERNELS_OT_LOG_PLAN_ROWS_H_
