// Per-entry math of log-domain Sinkhorn, shared verbatim by the CPU loops
// and the CUDA kernels so the two backends compute the same function.
//
// All reductions are streaming log-sum-exp accumulators that tolerate -inf
// terms (zero-mass rows/columns have potential -inf), so no NaN can arise
// however large eta * C is.
// Pure functions, safe from any thread and any kernel.
#ifndef SOLVERD_KERNELS_OT_SINKHORN_MATH_H_
#define SOLVERD_KERNELS_OT_SINKHORN_MATH_H_

#include <cmath>

#include "common/host_device.h"

namespace solverd::ot {

// -inf, spelled so that host and device code can both use it as a constant.
inline constexpr double kNegInf = -__builtin_huge_val();

// Running (max, scaled sum) pair: value() = log(sum exp(v_k)).
struct LogSumExp {
  double max = kNegInf;
  double sum = 0;

  SOLVERD_HD void Add(double v) {
    if (v == kNegInf) return;
    if (v > max) {
      sum = sum * exp(max - v) + 1.0;
      max = v;
    } else {
      sum += exp(v - max);
    }
  }
  SOLVERD_HD void Merge(const LogSumExp& o) {
    if (o.max == kNegInf) return;
    if (o.max > max) {
      sum = sum * exp(max - o.max) + o.sum;
      max = o.max;
    } else {
      sum += o.sum * exp(o.max - max);
    }
  }
  SOLVERD_HD double value() const {
    return sum > 0 ? max + log(sum) : kNegInf;
  }
};

// Cost between two points: sum_k |x_k - y_k|^p for p in {1, 2}.
SOLVERD_HD inline double PointCost(const double* x, const double* y, long dim, int p) {
  double c = 0;
  for (long k = 0; k < dim; ++k) {
    double d = x[k] - y[k];
    c += p == 1 ? fabs(d) : d * d;
  }
  return c;
}

// Exponent of P_ij = exp(LogPlan(...)).
SOLVERD_HD inline double LogPlan(double eta, double x, double y, double c) {
  return eta * (x + y - c) - 1.0;
}

// Potential that makes a row (column) sum equal its mass, given
// lse = log sum_j exp(eta (y_j - C_ij)) over that row.
SOLVERD_HD inline double BalancedPotential(double mass, double lse, double eta) {
  if (mass <= 0 || lse == kNegInf) {
    return kNegInf;
  }
  return (log(mass) + 1.0 - lse) / eta;
}

// Current sum of a row given its potential and the lse above.
SOLVERD_HD inline double MarginalFromLse(double potential, double lse, double eta) {
  if (potential == kNegInf) return 0;
  return exp(eta * potential - 1.0 + lse);
}

// Bin of log P value lp (>= lo) in a histogram of `bins` bins of width
// 1/scale starting at lo; values past the top go in the last bin.
SOLVERD_HD inline int HistogramBin(double lp, double lo, double scale, int bins) {
  double b = (lp - lo) * scale;
  return b >= bins - 1 ? bins - 1 : static_cast<int>(b);
}

// The value by which the Newton stage ranks plan entry ij for its sparse
// Hessian (ot_backend.h's PlanRanking): log P_ij less its row's and its
// column's log weight.
SOLVERD_HD inline double EntryRank(double log_plan, double row_weight, double col_weight) {
  return log_plan - row_weight - col_weight;
}

// Contributions of one entry to <C,P> and to sum P log P.
struct PlanTerms {
  double cost = 0;
  double plogp = 0;
  SOLVERD_HD void Add(double log_p, double c) {
    if (log_p == kNegInf) return;
    double p = exp(log_p);
    cost += p * c;
    plogp += p * log_p;
  }
};

// OtBackend::SparseHeaviestWeightedRows()'s rule for one entry: row i,
// of weighted entry `key` in a column whose best so far is *best, becomes
// its heaviest row if key is positive and at least that (of equal keys
// the last row, rows taken in order).
inline void TakeIfHeavier(double key, int64_t i, double* best, int32_t* heaviest) {
  if (key > 0 && key >= *best) {
    *best = key;
    *heaviest = static_cast<int32_t>(i);
  }
}

}  // namespace solverd::ot

#endif  // SOLVERD_KERNELS_OT_SINKHORN_MATH_H_
