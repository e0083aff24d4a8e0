// Tests of the host conjugate gradient on SNS's Schur complement
// (OtBackend::SolveSchur, the CPU backend's and the reference the CUDA
// backend's device loop follows step for step): it reaches the residual it
// is asked for, leaves inactive columns at 0, and stops at its iteration
// limit, with or without the coarse level of its preconditioner, which
// CoarseSpaceBuilder sets up. SnsCuda.MatchesCpu checks the device loop
// against it end to end.
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "ot/coarse_space.h"
#include "ot/ot_backend.h"
#include "ot/sinkhorn_math.h"

namespace solverd::ot::internal {
namespace {

constexpr int64_t kRows = 40, kCols = 30;

// A backend whose sparse plan is a dense matrix (zeros not kept), by
// default random; the passes over C that SolveSchur never calls fail.
class DensePlanBackend final : public OtBackend {
 public:
  explicit DensePlanBackend(unsigned seed, int64_t rows = kRows, int64_t cols = kCols)
      : rows_(rows), cols_(cols), plan_(rows * cols) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (double& v : plan_) v = u(rng) * u(rng) / (rows_ * cols_);
  }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  double At(int64_t i, int64_t j) const { return plan_[i * cols_ + j]; }
  double& At(int64_t i, int64_t j) { return plan_[i * cols_ + j]; }

  Status SparseMultiply(bool transpose, const std::vector<double>& in,
                        std::vector<double>* out) override {
    out->assign(transpose ? cols_ : rows_, 0.0);
    for (int64_t i = 0; i < rows_; ++i) {
      for (int64_t j = 0; j < cols_; ++j) {
        if (transpose) {
          (*out)[j] += At(i, j) * in[i];
        } else {
          (*out)[i] += At(i, j) * in[j];
        }
      }
    }
    return Status::Ok();
  }

  Status RowPass(double*) override { return Unused(); }
  Status UpdateRows(const Relaxation&) override { return Unused(); }
  Status UpdateColumns(const Relaxation&) override { return Unused(); }
  Status PlanTotals(double*, double*) override { return Unused(); }
  Status CopyPotentials(std::vector<double>*, std::vector<double>*) override { return Unused(); }
  Status CopyPlan(std::vector<double>*) override { return Unused(); }
  Status CopySparsePlan(double, SparsePlan*) override { return Unused(); }
  Status SetPotentials(const std::vector<double>&, const std::vector<double>&) override {
    return Unused();
  }
  Status PlanMarginals(std::vector<double>*, std::vector<double>*, double*) override {
    return Unused();
  }
  Status LogPlanHistogram(const PlanRanking&, double, double, int64_t, std::vector<int64_t>*,
                          std::vector<double>*) override {
    return Unused();
  }
  Status SparsifyPlan(const PlanRanking&, double, int64_t*) override { return Unused(); }
  Status UseWholePlan(bool*) override { return Unused(); }
  Status RefreshSparsePlan(double*) override { return Unused(); }
  Status SparseColumnSquares(const std::vector<double>&, std::vector<double>*) override {
    return Unused();
  }
  Status SparseHeaviestWeightedRows(const std::vector<double>& weight,
                                    std::vector<int32_t>* rows) override {
    rows->assign(cols_, -1);
    std::vector<double> best(cols_, 0.0);
    for (int64_t i = 0; i < rows_; ++i) {
      for (int64_t j = 0; j < cols_; ++j) {
        TakeIfHeavier(At(i, j) * weight[i], i, &best[j], &(*rows)[j]);
      }
    }
    return Status::Ok();
  }
  Status SparseGroupRowSums(const std::vector<int32_t>& group, int size,
                            std::vector<double>* q) override {
    q->assign(rows_ * size, 0.0);
    for (int64_t i = 0; i < rows_; ++i) {
      for (int64_t j = 0; j < cols_; ++j) {
        if (group[j] >= 0) (*q)[i * size + group[j]] += At(i, j);
      }
    }
    return Status::Ok();
  }

 private:
  static Status Unused() { return Internal("not part of SolveSchur"); }
  int64_t rows_, cols_;
  std::vector<double> plan_;
};

// The Newton system at the plan's own marginals, as sns_driver.cc sets it
// up: column `inactive` left out (the fixed one), a tiny shift.
SchurSystem SystemFor(const DensePlanBackend& backend, int64_t inactive, unsigned seed) {
  SchurSystem s;
  s.inv_dr.assign(backend.rows(), 0.0);
  s.dc.assign(backend.cols(), 0.0);
  for (int64_t i = 0; i < backend.rows(); ++i) {
    for (int64_t j = 0; j < backend.cols(); ++j) {
      s.inv_dr[i] += backend.At(i, j);
      s.dc[j] += backend.At(i, j);
    }
  }
  for (double& r : s.inv_dr) r = 1.0 / (r + 1e-12);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  s.active.assign(backend.cols(), 1.0);
  s.active[inactive] = 0;
  s.rhs.resize(backend.cols());
  s.inv_diag.resize(backend.cols());
  for (int64_t j = 0; j < backend.cols(); ++j) {
    double diag = s.dc[j];
    for (int64_t i = 0; i < backend.rows(); ++i) {
      diag -= backend.At(i, j) * backend.At(i, j) * s.inv_dr[i];
    }
    s.rhs[j] = s.active[j] * u(rng) * 1e-3;
    s.inv_diag[j] = s.active[j] / diag;
  }
  s.max_iterations = 1000;
  return s;
}

// ||rhs - S dy||_2, S applied densely.
double ResidualNorm(const DensePlanBackend& backend, const SchurSystem& s,
                    const std::vector<double>& dy) {
  std::vector<double> rows(backend.rows(), 0.0);
  for (int64_t i = 0; i < backend.rows(); ++i) {
    for (int64_t j = 0; j < backend.cols(); ++j) rows[i] += backend.At(i, j) * dy[j];
  }
  double norm = 0;
  for (int64_t j = 0; j < backend.cols(); ++j) {
    double back = 0;
    for (int64_t i = 0; i < backend.rows(); ++i) back += backend.At(i, j) * s.inv_dr[i] * rows[i];
    const double residual = s.active[j] * (s.rhs[j] - (s.dc[j] * dy[j] - back));
    norm += residual * residual;
  }
  return std::sqrt(norm);
}

double Norm(const std::vector<double>& v) {
  double s = 0;
  for (double e : v) s += e * e;
  return std::sqrt(s);
}

// Solves s, with the coarse level when `coarse`; checks the residual and
// the inactive column and returns the CG steps taken.
int64_t ExpectSolved(DensePlanBackend& backend, SchurSystem s, int64_t inactive, bool coarse) {
  if (coarse) {
    EXPECT_TRUE(CoarseSpaceBuilder().Build(backend, backend.rows() * backend.cols(), &s).ok());
    EXPECT_GT(s.coarse.size, 1);
  }
  std::vector<double> dy, plan_dy, want_plan_dy;
  int64_t iterations = 0;
  EXPECT_TRUE(backend.SolveSchur(s, &dy, &iterations, &plan_dy).ok());
  EXPECT_EQ(static_cast<int64_t>(dy.size()), backend.cols());
  // Ps dy as the CG tracked it, step by step, against the product.
  EXPECT_TRUE(backend.SparseMultiply(/*transpose=*/false, dy, &want_plan_dy).ok());
  EXPECT_EQ(plan_dy.size(), want_plan_dy.size());
  for (size_t i = 0; i < plan_dy.size() && i < want_plan_dy.size(); ++i) {
    EXPECT_NEAR(plan_dy[i], want_plan_dy[i], 1e-12 * (1 + std::fabs(want_plan_dy[i]))) << i;
  }
  EXPECT_LE(ResidualNorm(backend, s, dy), s.relative_target * Norm(s.rhs))
      << s.relative_target << (coarse ? " with" : " without") << " the coarse level";
  EXPECT_GT(iterations, 0);
  EXPECT_LT(iterations, s.max_iterations);
  EXPECT_EQ(dy[inactive], 0.0);
  return iterations;
}

TEST(SchurCg, ReachesTheResidualAskedFor) {
  for (double relative : {1e-2, 1e-6, 1e-10}) {
    for (bool coarse : {false, true}) {
      DensePlanBackend backend(7);
      SchurSystem s = SystemFor(backend, /*inactive=*/kCols - 1, 8);
      s.relative_target = relative;
      ExpectSolved(backend, s, kCols - 1, coarse);
    }
  }
}

// A plan that is a blurred monotone map (a 1-D point cloud's at moderate
// eta): S is close to a path graph's Laplacian, whose smooth modes Jacobi
// leaves to many CG steps and the aggregates catch.
TEST(SchurCg, TheCoarseLevelTakesFewerStepsOnABlurredMap) {
  constexpr int64_t kSide = 16;  // a 16 x 16 grid mapped onto a shifted one
  DensePlanBackend backend(0, kSide * kSide, kSide * kSide);
  for (int64_t i = 0; i < backend.rows(); ++i) {
    for (int64_t j = 0; j < backend.cols(); ++j) {
      const double dx = (i % kSide - j % kSide + 0.5) / kSide;
      const double dy = static_cast<double>(i / kSide - j / kSide) / kSide;
      backend.At(i, j) = std::exp(-100 * (dx * dx + dy * dy)) / (kSide * kSide);
    }
  }
  SchurSystem s = SystemFor(backend, /*inactive=*/0, 3);
  s.relative_target = 1e-3;
  // 21 steps and 11 when written.
  const int64_t jacobi = ExpectSolved(backend, s, 0, false);
  const int64_t two_level = ExpectSolved(backend, s, 0, true);
  EXPECT_LT(two_level * 3, jacobi * 2) << jacobi << " Jacobi, " << two_level << " two-level";
}

// The coarse level's parts: every active column in an aggregate (each
// has a seed row among its entries here), the fixed one in none, and the
// inverse that of R S R^T.
TEST(CoarseSpace, InvertsTheSchurComplementOnItsAggregates) {
  DensePlanBackend backend(21);
  SchurSystem s = SystemFor(backend, /*inactive=*/5, 22);
  ASSERT_TRUE(CoarseSpaceBuilder().Build(backend, kRows * kCols, &s).ok());
  const CoarseSpace& c = s.coarse;
  ASSERT_EQ(c.size, 7);  // a quarter of the 29 active columns
  ASSERT_EQ(static_cast<int64_t>(c.aggregate.size()), kCols);
  for (int64_t j = 0; j < kCols; ++j) {
    if (j == 5) {
      EXPECT_EQ(c.aggregate[j], -1);
    } else {
      EXPECT_GE(c.aggregate[j], 0);
      EXPECT_LT(c.aggregate[j], c.size);
    }
  }
  // R S R^T from S's columns applied densely.
  std::vector<double> coarse(c.size * c.size, 0.0);
  for (int64_t j = 0; j < kCols; ++j) {
    if (c.aggregate[j] < 0) continue;
    for (int64_t k = 0; k < kCols; ++k) {
      if (c.aggregate[k] < 0) continue;
      double entry = j == k ? s.dc[j] : 0.0;
      for (int64_t i = 0; i < kRows; ++i) {
        entry -= backend.At(i, j) * s.inv_dr[i] * backend.At(i, k);
      }
      coarse[c.aggregate[j] * c.size + c.aggregate[k]] += entry;
    }
  }
  for (int t = 0; t < c.size; ++t) {
    for (int u = 0; u < c.size; ++u) {
      double product = 0;
      for (int v = 0; v < c.size; ++v) {
        product += coarse[t * c.size + v] * c.inverse[v * c.size + u];
      }
      EXPECT_NEAR(product, t == u ? 1.0 : 0.0, 1e-9) << t << ", " << u;
    }
  }
}

// Jacobi alone where the coarse level would not help or cannot be built:
// a plan with fewer than 32 entries a column, and an R S R^T that is not
// positive definite (here S with its diagonal's plan part taken away).
TEST(CoarseSpace, LeavesJacobiAloneWhereItCannotHelp) {
  DensePlanBackend backend(23);
  SchurSystem s = SystemFor(backend, /*inactive=*/0, 24);
  ASSERT_TRUE(CoarseSpaceBuilder().Build(backend, /*kept=*/31 * kCols, &s).ok());
  EXPECT_EQ(s.coarse.size, 0);
  s.dc.assign(kCols, 0.0);
  ASSERT_TRUE(CoarseSpaceBuilder().Build(backend, kRows * kCols, &s).ok());
  EXPECT_EQ(s.coarse.size, 0);
  EXPECT_TRUE(s.coarse.aggregate.empty());
}

TEST(SchurCg, TighterTargetsTakeMoreSteps) {
  DensePlanBackend backend(11);
  SchurSystem s = SystemFor(backend, /*inactive=*/3, 12);
  int64_t loose = 0, tight = 0;
  std::vector<double> dy, plan_dy;
  s.relative_target = 1e-2;
  ASSERT_TRUE(backend.SolveSchur(s, &dy, &loose, &plan_dy).ok());
  s.relative_target = 1e-10;
  ASSERT_TRUE(backend.SolveSchur(s, &dy, &tight, &plan_dy).ok());
  EXPECT_LT(loose, tight);
  EXPECT_EQ(dy[3], 0.0);
}

TEST(SchurCg, StopsAtItsIterationLimit) {
  DensePlanBackend backend(13);
  SchurSystem s = SystemFor(backend, /*inactive=*/0, 14);
  s.relative_target = 0;
  s.max_iterations = 3;
  std::vector<double> dy, plan_dy;
  int64_t iterations = 0;
  ASSERT_TRUE(backend.SolveSchur(s, &dy, &iterations, &plan_dy).ok());
  EXPECT_EQ(iterations, 3);
  EXPECT_LT(ResidualNorm(backend, s, dy), Norm(s.rhs));  // three steps did reduce it
}

TEST(SchurCg, ZeroRightHandSideTakesNoStep) {
  DensePlanBackend backend(15);
  SchurSystem s = SystemFor(backend, /*inactive=*/0, 16);
  s.rhs.assign(kCols, 0.0);
  s.relative_target = 0;
  std::vector<double> dy, plan_dy;
  int64_t iterations = -1;
  ASSERT_TRUE(backend.SolveSchur(s, &dy, &iterations, &plan_dy).ok());
  EXPECT_EQ(iterations, 0);
  EXPECT_EQ(dy, std::vector<double>(kCols, 0.0));
}

}  // namespace
}  // namespace solverd::ot::internal
