#include "ot/gibbs_rows.h"

#include "common/cpu_clones.h"
#include "common/vector_exp.h"
#include "ot/sinkhorn_math.h"

namespace solverd::ot::internal {
namespace {

// The loops below for K in either precision: one body, a clone pair each.
// out[k] = K_k . v for the `count` (at most kRowBlock) rows from `rows`.
template <typename T>
SOLVERD_CLONE_BODY void BlockDotsOf(const T* rows, int64_t count, int64_t m, const double* v,
                                    double* out) {
  if (count < kRowBlock) {
    for (int64_t k = 0; k < count; ++k) {
      const T* row = rows + k * m;
      double sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < m; ++j) sum += static_cast<double>(row[j]) * v[j];
      out[k] = sum;
    }
    return;
  }
  const T *r0 = rows, *r1 = rows + m, *r2 = rows + 2 * m, *r3 = rows + 3 * m;
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
  for (int64_t j = 0; j < m; ++j) {
    const double vj = v[j];
    s0 += static_cast<double>(r0[j]) * vj;
    s1 += static_cast<double>(r1[j]) * vj;
    s2 += static_cast<double>(r2[j]) * vj;
    s3 += static_cast<double>(r3[j]) * vj;
  }
  out[0] = s0;
  out[1] = s1;
  out[2] = s2;
  out[3] = s3;
}

// into[j] += sum_k scales[k] K_kj over the `count` rows from `rows`.
template <typename T>
SOLVERD_CLONE_BODY void BlockAddScaledOf(const double* scales, const T* rows, int64_t count,
                                         int64_t m, double* into) {
  if (count < kRowBlock) {
    for (int64_t k = 0; k < count; ++k) {
      const T* row = rows + k * m;
      const double scale = scales[k];
#pragma omp simd
      for (int64_t j = 0; j < m; ++j) into[j] += scale * static_cast<double>(row[j]);
    }
    return;
  }
  const T *r0 = rows, *r1 = rows + m, *r2 = rows + 2 * m, *r3 = rows + 3 * m;
  const double c0 = scales[0], c1 = scales[1], c2 = scales[2], c3 = scales[3];
#pragma omp simd
  for (int64_t j = 0; j < m; ++j) {
    into[j] += (c0 * static_cast<double>(r0[j]) + c1 * static_cast<double>(r1[j])) +
               (c2 * static_cast<double>(r2[j]) + c3 * static_cast<double>(r3[j]));
  }
}

template <typename T>
SOLVERD_CLONE_BODY void BlockAddScaledSquaresOf(const double* scales, const T* rows,
                                                int64_t count, int64_t m, double* into) {
  for (int64_t k = 0; k < count; ++k) {
    const T* row = rows + k * m;
    const double scale = scales[k];
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) {
      const double entry = static_cast<double>(row[j]);
      into[j] += scale * entry * entry;
    }
  }
}

// Each run a gathered sum with no store inside it. Scattering each entry
// into its column's slot (a store-to-load chain wherever two columns share
// one) took 1.0-1.3 ms over a 2000 x 2000 double kernel on two threads,
// these runs 0.8-1.0 ms (standalone loops, random groups, dev VM).
template <typename T>
SOLVERD_CLONE_BODY void BlockRunSumsOf(const T* rows, int64_t count, int64_t m,
                                       const ColumnRuns& runs, double* sums) {
  const int32_t* order = runs.order;
  const double* weight = runs.weight;
  if (count < kRowBlock) {
    for (int64_t k = 0; k < count; ++k) {
      const T* row = rows + k * m;
      for (int t = 0; t < runs.runs; ++t) {
        double sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int64_t p = runs.begin[t]; p < runs.begin[t + 1]; ++p) {
          sum += static_cast<double>(row[order[p]]) * weight[p];
        }
        sums[k * runs.runs + t] = sum;
      }
    }
    return;
  }
  const T *r0 = rows, *r1 = rows + m, *r2 = rows + 2 * m, *r3 = rows + 3 * m;
  for (int t = 0; t < runs.runs; ++t) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (int64_t p = runs.begin[t]; p < runs.begin[t + 1]; ++p) {
      const int32_t j = order[p];
      const double w = weight[p];
      s0 += static_cast<double>(r0[j]) * w;
      s1 += static_cast<double>(r1[j]) * w;
      s2 += static_cast<double>(r2[j]) * w;
      s3 += static_cast<double>(r3[j]) * w;
    }
    sums[t] = s0;
    sums[runs.runs + t] = s1;
    sums[2 * runs.runs + t] = s2;
    sums[3 * runs.runs + t] = s3;
  }
}

template <typename T>
SOLVERD_CLONE_BODY void KernelRowOf(const double* cost_row, const double* y, int64_t m,
                                    double eta, double xi, T* out) {
#pragma omp simd
  for (int64_t j = 0; j < m; ++j) {
    out[j] = static_cast<T>(VectorExp(LogPlan(eta, xi, y[j], cost_row[j])));
  }
}


template <typename T>
SOLVERD_CLONE_BODY RowTotals RowTotalsOf(const T* row, const double* cost_row, const double* v,
                                         const double* vy, int64_t m) {
  double kv = 0, kvc = 0, kvy = 0;
#pragma omp simd reduction(+ : kv, kvc, kvy)
  for (int64_t j = 0; j < m; ++j) {
    const double k = static_cast<double>(row[j]);
    kv += k * v[j];
    kvc += k * v[j] * cost_row[j];
    kvy += k * vy[j];
  }
  return RowTotals{kv, kvc, kvy};
}

// out[j] = u K_j v_j over one row.
template <typename T>
SOLVERD_CLONE_BODY void ScaledRowOf(double u, const T* row, const double* v, int64_t m,
                                    double* out) {
#pragma omp simd
  for (int64_t j = 0; j < m; ++j) out[j] = u * static_cast<double>(row[j]) * v[j];
}

}  // namespace

SOLVERD_CPU_CLONES void BlockDots(const double* rows, int64_t count, int64_t m, const double* v,
                                  double* out) {
  BlockDotsOf(rows, count, m, v, out);
}
SOLVERD_CPU_CLONES void BlockDots(const float* rows, int64_t count, int64_t m, const double* v,
                                  double* out) {
  BlockDotsOf(rows, count, m, v, out);
}
SOLVERD_CPU_CLONES void BlockAddScaled(const double* scales, const double* rows, int64_t count,
                                       int64_t m, double* into) {
  BlockAddScaledOf(scales, rows, count, m, into);
}
SOLVERD_CPU_CLONES void BlockAddScaled(const double* scales, const float* rows, int64_t count,
                                       int64_t m, double* into) {
  BlockAddScaledOf(scales, rows, count, m, into);
}
SOLVERD_CPU_CLONES void BlockAddScaledSquares(const double* scales, const double* rows,
                                              int64_t count, int64_t m, double* into) {
  BlockAddScaledSquaresOf(scales, rows, count, m, into);
}
SOLVERD_CPU_CLONES void BlockAddScaledSquares(const double* scales, const float* rows,
                                              int64_t count, int64_t m, double* into) {
  BlockAddScaledSquaresOf(scales, rows, count, m, into);
}
SOLVERD_CPU_CLONES void BlockRunSums(const double* rows, int64_t count, int64_t m,
                                     const ColumnRuns& runs, double* sums) {
  BlockRunSumsOf(rows, count, m, runs, sums);
}
SOLVERD_CPU_CLONES void BlockRunSums(const float* rows, int64_t count, int64_t m,
                                     const ColumnRuns& runs, double* sums) {
  BlockRunSumsOf(rows, count, m, runs, sums);
}
SOLVERD_CPU_CLONES RowTotals RowTotalsFor(const double* row, const double* cost_row,
                                          const double* v, const double* vy, int64_t m) {
  return RowTotalsOf(row, cost_row, v, vy, m);
}
SOLVERD_CPU_CLONES RowTotals RowTotalsFor(const float* row, const double* cost_row,
                                          const double* v, const double* vy, int64_t m) {
  return RowTotalsOf(row, cost_row, v, vy, m);
}
SOLVERD_CPU_CLONES void ScaledRow(double u, const double* row, const double* v, int64_t m,
                                  double* out) {
  ScaledRowOf(u, row, v, m, out);
}
SOLVERD_CPU_CLONES void ScaledRow(double u, const float* row, const double* v, int64_t m,
                                  double* out) {
  ScaledRowOf(u, row, v, m, out);
}
SOLVERD_CPU_CLONES void KernelRow(const double* cost_row, const double* y, int64_t m,
                                  double eta, double xi, double* out) {
  KernelRowOf(cost_row, y, m, eta, xi, out);
}
SOLVERD_CPU_CLONES void KernelRow(const double* cost_row, const double* y, int64_t m,
                                  double eta, double xi, float* out) {
  KernelRowOf(cost_row, y, m, eta, xi, out);
}


}  // namespace solverd::ot::internal
