// Tests of the CPU backend's scaling form: one GibbsKernel iteration is one
// log-domain Sinkhorn iteration, the measurement before it is the row
// error, and it refuses (changing nothing) where scalings would not hold.
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

double RowError(const Case& c, const std::vector<double>& x, const std::vector<double>& y) {
  double error = 0;
  for (int64_t i = 0; i < c.n; ++i) {
    double row = 0;
    for (int64_t j = 0; j < c.m; ++j) {
      row += std::exp(LogPlan(c.eta, x[i], y[j], c.cost[i * c.m + j]));
    }
    error += std::fabs(row - c.a[i]);
  }
  return error;
}

void ExpectPotentialsNear(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t k = 0; k < got.size(); ++k) {
    if (std::isinf(want[k])) {
      EXPECT_EQ(got[k], want[k]) << k;
    } else {
      EXPECT_NEAR(got[k], want[k], 1e-12) << k;
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
      ASSERT_TRUE(kernel.Iterate(c.a, c.b, -INFINITY, &error, &updated));
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
  ASSERT_TRUE(kernel.Iterate(c.a, c.b, INFINITY, &error, &updated));
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
    EXPECT_FALSE(kernel.Iterate(c.a, c.b, -INFINITY, &error, &updated)) << "shift " << shift;
    EXPECT_FALSE(updated);
    std::vector<double> x, y;
    kernel.Potentials(&x, &y);
    ExpectPotentialsNear(x, c.x);
    ExpectPotentialsNear(y, c.y);
  }
}

}  // namespace
}  // namespace solverd::ot::internal
