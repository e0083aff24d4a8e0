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

// Overrelaxed Sinkhorn (Thibault, Chizat, Dossal and Papadakis,
// Algorithms 2021; Lehmann, von Renesse, Sambale and Uschmajew, Optim.
// Lett. 2022): each half-step moves a potential `omega` times the way to
// the one that balances its row (column), x <- x + omega (x_hat - x). Near
// the optimum Sinkhorn is a linear iteration of rate theta^2 and this its
// successive over-relaxation: with omega = 2 / (1 + sqrt(1 - theta^2)) the
// rate is omega - 1 (Young); tuned so (overrelaxation.h), 3740 -> 370
// iterations on bench/ot's W1 density case. Far from the optimum a row may
// take the plain step instead (min_log_ratio below). omega = 1 is classic
// Sinkhorn.
struct Relaxation {
  double omega = 1;
  // A row whose sum r over its mass a has log(r / a) below this takes the
  // plain step (factor 1): there the relaxed step would keep less than
  // kMinRelaxedGain of what the plain one gains in the dual objective
  // (overrelaxation.h's RelaxationFor()).
  double min_log_ratio = kNegInf;
};

// The factor of the step a row (column) takes, log_ratio = log(r / a) =
// eta (x - x_hat) for its sum r, mass a, potential x and balancing x_hat.
SOLVERD_HD inline double RelaxationFactor(double log_ratio, const Relaxation& relaxation) {
  return log_ratio >= relaxation.min_log_ratio ? relaxation.omega : 1.0;
}

// A half-step of one potential: where it goes, from where (log_ratio, as
// above) and how far (factor).
struct RelaxedStep {
  double potential = kNegInf;
  double log_ratio = 0;
  double factor = 1;
};

// The half-step from potential x, x_hat the one that balances its row.
SOLVERD_HD inline RelaxedStep RelaxedPotential(double x, double x_hat, double eta,
                                               const Relaxation& relaxation) {
  RelaxedStep step;
  step.potential = x_hat;
  if (relaxation.omega == 1 || x == kNegInf || x_hat == kNegInf) return step;
  step.log_ratio = eta * (x - x_hat);
  step.factor = RelaxationFactor(step.log_ratio, relaxation);
  if (step.factor != 1) step.potential = x - step.factor * step.log_ratio / eta;
  return step;
}

// |r' - a| for the sum r' the half-step leaves a row of mass a at, which
// had log(r / a) = log_ratio and took factor `factor`: r' = a (r / a)^(1 -
// factor), zero for the plain step. What the columns' half-step leaves is
// the error the next row pass cannot see.
SOLVERD_HD inline double RelaxedMarginalError(double mass, double log_ratio, double factor) {
  return factor == 1 ? 0.0 : fabs(mass * expm1((1 - factor) * log_ratio));
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
