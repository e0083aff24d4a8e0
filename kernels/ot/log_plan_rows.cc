#include "ot/log_plan_rows.h"

#include "common/cpu_clones.h"
#include "common/vector_exp.h"

namespace solverd::ot::internal {

SOLVERD_CPU_CLONES double RowPlanSum(const double* cost_row, const double* y, int64_t m,
                                     double eta, double xi) {
  double sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < m; ++j) sum += VectorExp(LogPlan(eta, xi, y[j], cost_row[j]));
  return sum;
}

SOLVERD_CPU_CLONES double RowPlanAccumulate(const double* cost_row, const double* y, int64_t m,
                                            double eta, double xi, double* col) {
  double sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < m; ++j) {
    const double p = VectorExp(LogPlan(eta, xi, y[j], cost_row[j]));
    col[j] += p;
    sum += p;
  }
  return sum;
}

SOLVERD_CPU_CLONES void LogPlanRow(const double* cost_row, const double* y, int64_t m,
                                   double eta, double xi, double* out) {
#pragma omp simd
  for (int64_t j = 0; j < m; ++j) out[j] = LogPlan(eta, xi, y[j], cost_row[j]);
}

SOLVERD_CPU_CLONES void ExpRow(const double* log_plan, int64_t m, double* plan) {
#pragma omp simd
  for (int64_t j = 0; j < m; ++j) plan[j] = VectorExp(log_plan[j]);
}

SOLVERD_CPU_CLONES void PlanAtColumns(const double* cost_row, const double* y, double eta,
                                      double xi, const int32_t* columns, int64_t count,
                                      double* out) {
#pragma omp simd
  for (int64_t k = 0; k < count; ++k) {
    out[k] = VectorExp(LogPlan(eta, xi, y[columns[k]], cost_row[columns[k]]));
  }
}

SOLVERD_CPU_CLONES PlanTerms RowPlanTerms(const double* cost_row, const double* log_plan,
                                          const double* plan, int64_t m) {
  double cost = 0, plogp = 0;
#pragma omp simd reduction(+ : cost, plogp)
  for (int64_t j = 0; j < m; ++j) {
    cost += plan[j] * cost_row[j];
    plogp += plan[j] > 0 ? plan[j] * log_plan[j] : 0.0;
  }
  return PlanTerms{cost, plogp};
}

}  // namespace solverd::ot::internal
