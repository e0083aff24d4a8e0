// Tests of the CPU backend's scaling form: one GibbsKernel iteration is one
// log-domain Sinkhorn iteration, the measurement before it is the row
// error, and it refuses (changing nothing) where scalings would not hold;
// in single precision what it reports bounds the plan's true error.
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "ot/gibbs_kernel.h"
#include "ot/sinkhorn_math.h"

namespace solverd::ot::internal {
namespace {

struct Case {
  int64_t n = 0, m = 0;
  double eta = 0;
  std::vector<double> cost, a, b, x, y;
};

// Random cost in [0, 1), a zero-mass row and column, potentials near 0.
Case RandomCase(int64_t n, int64_t m, double eta, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  Case c;
  c.n = n;
  c.m = m;
  c.eta = eta;
  for (int64_t e = 0; e < n * m; ++e) c.cost.push_back(u(rng));
  c.a.assign(n, 1.0 / (n - 1));
  c.b.assign(m, 1.0 / (m - 1));
  c.a[1] = c.b[2] = 0;
  for (int64_t i = 0; i < n; ++i) c.x.push_back(0.1 * u(rng));
  for (int64_t j = 0; j < m; ++j) c.y.push_back(0.1 * u(rng));
  return c;
}

// One classic (not over-relaxed) iteration.
bool PlainIterate(GibbsKernel& kernel, const Case& c, double keep_below, double* error,
                  bool* updated) {
  double column_error = 0;
  return kernel.Iterate(c.a, c.b, Relaxation(), keep_below, error, updated, &column_error);
}

// One exact log-domain iteration: rows, then columns.
void LogDomainIteration(const Case& c, std::vector<double>* x, std::vector<double>* y) {
  for (int64_t i = 0; i < c.n; ++i) {
    LogSumExp lse;
    for (int64_t j = 0; j < c.m; ++j) lse.Add(c.eta * ((*y)[j] - c.cost[i * c.m + j]));
    (*x)[i] = BalancedPotential(c.a[i], lse.value(), c.eta);
  }
  for (int64_t j = 0; j < c.m; ++j) {
    LogSumExp lse;
    for (int64_t i = 0; i < c.n; ++i) lse.Add(c.eta * ((*x)[i] - c.cost[i * c.m + j]));
    (*y)[j] = BalancedPotential(c.b[j], lse.value(), c.eta);
  }
}

// ||P1 - a||_1 and ||P^T 1 - b||_1 of the plan at (x, y), in double.
struct MarginalErrors {
  double rows = 0, columns = 0;
};

MarginalErrors ErrorsAt(const Case& c, const std::vector<double>& x,
                        const std::vector<double>& y) {
  std::vector<double> rows(c.n, 0.0), columns(c.m, 0.0);
  for (int64_t i = 0; i < c.n; ++i) {
    for (int64_t j = 0; j < c.m; ++j) {
      const double p = std::exp(LogPlan(c.eta, x[i], y[j], c.cost[i * c.m + j]));
      rows[i] += p;
      columns[j] += p;
    }
  }
  MarginalErrors e;
  for (int64_t i = 0; i < c.n; ++i) e.rows += std::fabs(rows[i] - c.a[i]);
  for (int64_t j = 0; j < c.m; ++j) e.columns += std::fabs(columns[j] - c.b[j]);
  return e;
}

double RowError(const Case& c, const std::vector<double>& x, const std::vector<double>& y) {
  return ErrorsAt(c, x, y).rows;
}

void ExpectPotentialsNear(const std::vector<double>& got, const std::vector<double>& want,
                          double tolerance = 1e-12) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t k = 0; k < got.size(); ++k) {
    if (std::isinf(want[k])) {
      EXPECT_EQ(got[k], want[k]) << k;
    } else {
      EXPECT_NEAR(got[k], want[k], tolerance) << k;
    }
  }
}

// sum P C and sum P log P of the plan at (x, y), entry by entry.
void ExactPlanTotals(const Case& c, const std::vector<double>& x, const std::vector<double>& y,
                     double* cost, double* plogp) {
  *cost = *plogp = 0;
  for (int64_t i = 0; i < c.n; ++i) {
    for (int64_t j = 0; j < c.m; ++j) {
      const double log_p = LogPlan(c.eta, x[i], y[j], c.cost[i * c.m + j]);
      const double p = std::exp(log_p);
      *cost += p * c.cost[i * c.m + j];
      if (p > 0) *plogp += p * log_p;
    }
  }
}

TEST(GibbsKernel, IterationsMatchLogDomainOnesWithAnyThreadCount) {
  // Passes split over threads only past 2^19 entries of K per thread.
  for (int threads : {1, 3}) {
    Case c = threads == 1 ? RandomCase(300, 170, 20.0, 7) : RandomCase(800, 2000, 20.0, 7);
    GibbsKernel kernel(c.cost.data(), c.n, c.m, c.eta, threads);
    kernel.Rebuild(c.x, c.y);
    std::vector<double> x = c.x, y = c.y, kx, ky;
    for (int it = 0; it < 5; ++it) {
      double error = -1;
      bool updated = false;
      ASSERT_TRUE(PlainIterate(kernel, c, -INFINITY, &error, &updated));
      EXPECT_TRUE(updated);
      const double want = RowError(c, x, y);
      EXPECT_NEAR(error, want, 1e-12 * (1 + want)) << "iteration " << it;
      LogDomainIteration(c, &x, &y);
      kernel.Potentials(&kx, &ky);
      ExpectPotentialsNear(kx, x);
      ExpectPotentialsNear(ky, y);
    }
    std::vector<double> rows;
    kernel.RowSums(&rows);
    double error = 0;
    for (int64_t i = 0; i < c.n; ++i) error += std::fabs(rows[i] - c.a[i]);
    EXPECT_NEAR(error, RowError(c, x, y), 1e-12);
  }
}

TEST(GibbsKernel, KeepsThePotentialsWhenTheErrorIsBelowTheBar) {
  Case c = RandomCase(40, 30, 5.0, 2);
  GibbsKernel kernel(c.cost.data(), c.n, c.m, c.eta, 1);
  kernel.Rebuild(c.x, c.y);
  double error = -1;
  bool updated = true;
  ASSERT_TRUE(PlainIterate(kernel, c, INFINITY, &error, &updated));
  EXPECT_FALSE(updated);
  EXPECT_NEAR(error, RowError(c, c.x, c.y), 1e-12);
  std::vector<double> x, y;
  kernel.Potentials(&x, &y);
  ExpectPotentialsNear(x, c.x);
  ExpectPotentialsNear(y, c.y);
}

TEST(GibbsKernel, RefusesSumsAndScalingsOutOfRange) {
  // Rows of exp(-eta C) underflow at eta * C ~ 1e4, and a kernel built far
  // from balance needs scalings past 1e100: neither may change anything.
  for (double shift : {0.0, -0.4}) {
    Case c = RandomCase(20, 20, shift == 0 ? 1e4 : 1000.0, 3);
    for (double& v : c.cost) v = 0.5 + 0.5 * v;
    for (double& v : c.x) v = shift;
    GibbsKernel kernel(c.cost.data(), c.n, c.m, c.eta, 2);
    kernel.Rebuild(c.x, c.y);
    double error = -1;
    bool updated = true;
    EXPECT_FALSE(PlainIterate(kernel, c, -INFINITY, &error, &updated)) << "shift " << shift;
    EXPECT_FALSE(updated);
    std::vector<double> x, y;
    kernel.Potentials(&x, &y);
    ExpectPotentialsNear(x, c.x);
    ExpectPotentialsNear(y, c.y);
  }
}

TEST(GibbsKernel, SinglePrecisionReportsABoundOnThePlansTrueError) {
  // The plan the potentials stand for, in double: its L1 error over rows
  // and columns never exceeds what the single-precision kernel reports
  // (once the columns have been balanced), and the report is the measured
  // row error plus 2^-23 of the mass, not more.
  for (int threads : {1, 3}) {
    Case c = threads == 1 ? RandomCase(300, 170, 20.0, 7) : RandomCase(800, 2000, 20.0, 7);
    GibbsKernel single(c.cost.data(), c.n, c.m, c.eta, threads, KernelPrecision::kSingle, 1.0);
    GibbsKernel exact(c.cost.data(), c.n, c.m, c.eta, threads, KernelPrecision::kDouble, 1.0);
    single.Rebuild(c.x, c.y);
    exact.Rebuild(c.x, c.y);
    EXPECT_EQ(single.RoundingBound(), 0x1p-23);
    EXPECT_EQ(exact.RoundingBound(), 0.0);
    std::vector<double> x, y, ex, ey;
    for (int it = 0; it < 6; ++it) {
      double reported = -1, exact_error = -1;
      bool updated = false;
      single.Potentials(&x, &y);
      const MarginalErrors errors = ErrorsAt(c, x, y);
      ASSERT_TRUE(PlainIterate(single, c, -INFINITY, &reported, &updated));
      ASSERT_TRUE(PlainIterate(exact, c, -INFINITY, &exact_error, &updated));
      if (it > 0) {  // the plan's mass is then sum(b) = 1
        EXPECT_LE(errors.rows + errors.columns, reported) << "iteration " << it;
        EXPECT_NEAR(reported - single.RoundingBound(), errors.rows, 0x1p-24) << "iteration " << it;
      }
      single.Potentials(&x, &y);
      exact.Potentials(&ex, &ey);
      // K's relative rounding of 2^-24 moves a potential by about that / eta.
      ExpectPotentialsNear(x, ex, 1e-8);
      ExpectPotentialsNear(y, ey, 1e-8);
    }
  }
}

TEST(GibbsKernel, UseDoublePrecisionTakesEffectAtTheNextRebuild) {
  Case c = RandomCase(60, 50, 10.0, 5);
  GibbsKernel kernel(c.cost.data(), c.n, c.m, c.eta, 1, KernelPrecision::kSingle, 1.0);
  kernel.Rebuild(c.x, c.y);
  ASSERT_TRUE(kernel.single_precision());
  kernel.UseDoublePrecision();
  EXPECT_FALSE(kernel.single_precision());
  EXPECT_EQ(kernel.RoundingBound(), 0.0);
  EXPECT_FALSE(kernel.SetPotentials(c.x, c.y));  // nothing built to scale
  kernel.Rebuild(c.x, c.y);
  std::vector<double> x = c.x, y = c.y, kx, ky;
  double error = -1;
  bool updated = false;
  ASSERT_TRUE(PlainIterate(kernel, c, -INFINITY, &error, &updated));
  EXPECT_NEAR(error, RowError(c, x, y), 1e-12);
  LogDomainIteration(c, &x, &y);
  kernel.Potentials(&kx, &ky);
  ExpectPotentialsNear(kx, x);
  ExpectPotentialsNear(ky, y);
}

TEST(GibbsKernel, PlanTotalsEqualTheSumsOverThePlansEntries) {
  for (KernelPrecision precision : {KernelPrecision::kDouble, KernelPrecision::kSingle}) {
    Case c = RandomCase(90, 70, 15.0, 9);
    GibbsKernel kernel(c.cost.data(), c.n, c.m, c.eta, 2, precision, 1.0);
    kernel.Rebuild(c.x, c.y);
    double error = 0;
    bool updated = false;
    for (int it = 0; it < 4; ++it) ASSERT_TRUE(PlainIterate(kernel, c, -1, &error, &updated));
    std::vector<double> x, y;
    kernel.Potentials(&x, &y);  // -inf at the zero-mass row and column
    double cost = 0, plogp = 0, want_cost = 0, want_plogp = 0;
    kernel.PlanTotals(&cost, &plogp);
    ExactPlanTotals(c, x, y, &want_cost, &want_plogp);
    // Term by term within K's rounding (2^-24 in single precision).
    const double relative = precision == KernelPrecision::kSingle ? 1e-7 : 1e-12;
    EXPECT_NEAR(cost, want_cost, relative * std::fabs(want_cost));
    EXPECT_NEAR(plogp, want_plogp, relative * std::fabs(want_plogp) + 1e-12);
  }
}

// The whole plan's products (SNS's Newton systems) and marginals against
// sums over the plan's entries, each from the potentials x, y: the
// products within `relative` of the sum of their terms' magnitudes, the
// marginals (which the line search compares) within 1e-12 of them.
void ExpectPlanSums(const Case& c, GibbsKernel& kernel, const std::vector<double>& x,
                    const std::vector<double>& y, double relative) {
  std::vector<double> plan(c.n * c.m);
  for (int64_t e = 0; e < c.n * c.m; ++e) {
    plan[e] = std::exp(LogPlan(c.eta, x[e / c.m], y[e % c.m], c.cost[e]));
  }
  std::mt19937 rng(14);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> v(c.m), w(c.n);
  for (double& e : v) e = u(rng);
  for (double& e : w) e = u(rng);
  std::vector<double> pv, ptw, squares, gram, r, col;
  kernel.PlanTimes(v, &pv);
  kernel.PlanTransposeTimes(w, &ptw);
  kernel.PlanColumnSquares(w, &squares);
  std::vector<double> gram_pv;
  kernel.PlanGramTimes(w, v, &gram, &gram_pv);
  kernel.Marginals(&r, &col);
  // Each sum and the sum of its terms' magnitudes.
  struct Sums {
    std::vector<double> want, magnitude;
    Sums(int64_t size) : want(size, 0.0), magnitude(size, 0.0) {}
    void Add(int64_t k, double term) {
      want[k] += term;
      magnitude[k] += std::fabs(term);
    }
  };
  Sums want_pv(c.n), want_ptw(c.m), want_squares(c.m), want_gram(c.m), want_r(c.n), want_c(c.m);
  for (int64_t i = 0; i < c.n; ++i) {
    for (int64_t j = 0; j < c.m; ++j) want_pv.Add(i, plan[i * c.m + j] * v[j]);
  }
  for (int64_t i = 0; i < c.n; ++i) {
    for (int64_t j = 0; j < c.m; ++j) {
      const double p = plan[i * c.m + j];
      want_ptw.Add(j, p * w[i]);
      want_squares.Add(j, p * p * w[i]);
      want_gram.Add(j, p * w[i] * want_pv.want[i]);
      want_r.Add(i, p);
      want_c.Add(j, p);
    }
  }
  const auto expect_near = [](const std::vector<double>& got, const Sums& sums,
                              double relative, const char* what) {
    ASSERT_EQ(got.size(), sums.want.size()) << what;
    double scale = 0;
    for (double e : sums.want) scale = std::max(scale, std::fabs(e));
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_NEAR(got[k], sums.want[k], relative * sums.magnitude[k] + 1e-12 * scale)
          << what << " " << k;
    }
  };
  expect_near(pv, want_pv, relative, "P v");
  expect_near(ptw, want_ptw, relative, "P^T w");
  expect_near(squares, want_squares, 2 * relative, "column squares");
  expect_near(gram, want_gram, 3 * relative, "P^T diag(w) P v");
  expect_near(gram_pv, want_pv, relative, "P v on the Gram product's way");
  expect_near(r, want_r, 0, "P 1");
  expect_near(col, want_c, 0, "P^T 1");
  std::vector<int32_t> group(c.m);
  for (int64_t j = 0; j < c.m; ++j) group[j] = j % 7 == 3 ? -1 : static_cast<int32_t>(j % 5);
  std::vector<double> group_sums;
  Sums want_group_sums(c.n * 5);
  kernel.PlanGroupRowSums(group, 5, &group_sums);
  for (int64_t i = 0; i < c.n; ++i) {
    for (int64_t j = 0; j < c.m; ++j) {
      if (group[j] >= 0) want_group_sums.Add(i * 5 + group[j], plan[i * c.m + j]);
    }
  }
  expect_near(group_sums, want_group_sums, relative, "group row sums");
  // The same three in SNS's one setup pass.
  std::vector<double> setup_ptw, setup_squares, setup_group_sums;
  kernel.PlanSchurSetup(w, w, group, 5, &setup_ptw, &setup_squares, &setup_group_sums);
  expect_near(setup_ptw, want_ptw, relative, "setup's P^T w");
  expect_near(setup_squares, want_squares, 2 * relative, "setup's column squares");
  expect_near(setup_group_sums, want_group_sums, relative, "setup's group row sums");
  EXPECT_EQ(pv[1], 0.0);  // the zero-mass row
  EXPECT_EQ(ptw[2], 0.0);  // and column
}

// At scalings away from 1 (after iterations), with a zero-mass row and
// column, on two threads' parts: the products read K's single copy (each
// term within 2^-24), until a scaling leaves its range and K itself serves.
TEST(GibbsKernel, PlanProductsEqualTheSumsOverThePlansEntries) {
  Case c = RandomCase(420, 330, 15.0, 13);  // 2^17 entries and more: two parts
  GibbsKernel kernel(c.cost.data(), c.n, c.m, c.eta, 2);
  kernel.Rebuild(c.x, c.y);
  double error = 0;
  bool updated = false;
  for (int it = 0; it < 3; ++it) ASSERT_TRUE(PlainIterate(kernel, c, -1, &error, &updated));
  std::vector<double> x, y;
  kernel.Potentials(&x, &y);
  ExpectPlanSums(c, kernel, x, y, 0x1p-24);
  // Row 0's scaling e^60 = 1.1e26 times what it was: past the single
  // copy's range (1e12).
  x[0] += 60 / c.eta;
  ASSERT_TRUE(kernel.SetPotentials(x, y));
  ExpectPlanSums(c, kernel, x, y, 0);
  // Nor is there a copy for plans of mass past 1e20, whose entries could
  // leave single precision's range.
  GibbsKernel heavy(c.cost.data(), c.n, c.m, c.eta, 2, KernelPrecision::kDouble, 1e30);
  heavy.Rebuild(c.x, c.y);
  for (int it = 0; it < 3; ++it) ASSERT_TRUE(PlainIterate(heavy, c, -1, &error, &updated));
  heavy.Potentials(&x, &y);
  ExpectPlanSums(c, heavy, x, y, 0);
}

TEST(GibbsKernel, SinglePrecisionOnlyWhereTheToleranceLeavesRoom) {
  EXPECT_EQ(GibbsKernel::PrecisionFor(1e-6, 1.0), KernelPrecision::kSingle);
  EXPECT_EQ(GibbsKernel::PrecisionFor(1e-7, 1.0), KernelPrecision::kDouble);
  EXPECT_EQ(GibbsKernel::PrecisionFor(1e-6, 10.0), KernelPrecision::kDouble);
  EXPECT_EQ(GibbsKernel::PrecisionFor(1e-5, 10.0), KernelPrecision::kSingle);
  EXPECT_EQ(GibbsKernel::PrecisionFor(0, 1.0), KernelPrecision::kDouble);
}

TEST(GibbsKernel, SmallUpToEightMebibytesInDouble) {
  EXPECT_TRUE(GibbsKernel::SmallInDouble(1024, 1024));
  EXPECT_TRUE(GibbsKernel::SmallInDouble(200, 200));
  EXPECT_FALSE(GibbsKernel::SmallInDouble(1024, 1025));
  EXPECT_FALSE(GibbsKernel::SmallInDouble(2000, 2000));
}

}  // namespace
}  // namespace solverd::ot::internal
