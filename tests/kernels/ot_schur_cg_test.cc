// Tests of the host conjugate gradient on SNS's Schur complement
// (OtBackend::SolveSchur, the CPU backend's and the reference the CUDA
// backend's device loop follows step for step): it reaches the residual it
// is asked for, leaves inactive columns at 0, and stops at its iteration
// limit. SnsCuda.MatchesCpu checks the device loop against it end to end.
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "ot/ot_backend.h"

namespace solverd::ot::internal {
namespace {

constexpr int64_t kRows = 40, kCols = 30;

// A backend whose sparse plan is a dense random matrix; the passes over C
// that SolveSchur never calls fail.
class DensePlanBackend final : public OtBackend {
 public:
  explicit DensePlanBackend(unsigned seed) : plan_(kRows * kCols) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (double& v : plan_) v = u(rng) * u(rng) / (kRows * kCols);
  }
  double At(int64_t i, int64_t j) const { return plan_[i * kCols + j]; }

  Status SparseMultiply(bool transpose, const std::vector<double>& in,
                        std::vector<double>* out) override {
    out->assign(transpose ? kCols : kRows, 0.0);
    for (int64_t i = 0; i < kRows; ++i) {
      for (int64_t j = 0; j < kCols; ++j) {
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
  Status UpdateRows() override { return Unused(); }
  Status UpdateColumns() override { return Unused(); }
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
  Status LogPlanHistogram(const PlanRanking&, double, double, std::vector<int64_t>*,
                          std::vector<double>*) override {
    return Unused();
  }
  Status SparsifyPlan(const PlanRanking&, double, int64_t*) override { return Unused(); }
  Status RefreshSparsePlan(double*) override { return Unused(); }
  Status SparseColumnSquares(const std::vector<double>&, std::vector<double>*) override {
    return Unused();
  }

 private:
  static Status Unused() { return Internal("not part of SolveSchur"); }
  std::vector<double> plan_;
};

// The Newton system at the plan's own marginals, as sns_driver.cc sets it
// up: column `inactive` left out (the fixed one), a tiny shift.
SchurSystem SystemFor(const DensePlanBackend& backend, int64_t inactive, unsigned seed) {
  SchurSystem s;
  s.inv_dr.assign(kRows, 0.0);
  s.dc.assign(kCols, 0.0);
  for (int64_t i = 0; i < kRows; ++i) {
    for (int64_t j = 0; j < kCols; ++j) {
      s.inv_dr[i] += backend.At(i, j);
      s.dc[j] += backend.At(i, j);
    }
  }
  for (double& r : s.inv_dr) r = 1.0 / (r + 1e-12);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  s.active.assign(kCols, 1.0);
  s.active[inactive] = 0;
  s.rhs.resize(kCols);
  s.inv_diag.resize(kCols);
  for (int64_t j = 0; j < kCols; ++j) {
    double diag = s.dc[j];
    for (int64_t i = 0; i < kRows; ++i) diag -= backend.At(i, j) * backend.At(i, j) * s.inv_dr[i];
    s.rhs[j] = s.active[j] * u(rng) * 1e-3;
    s.inv_diag[j] = s.active[j] / diag;
  }
  s.max_iterations = 1000;
  return s;
}

// ||rhs - S dy||_2, S applied densely.
double ResidualNorm(const DensePlanBackend& backend, const SchurSystem& s,
                    const std::vector<double>& dy) {
  std::vector<double> rows(kRows, 0.0);
  for (int64_t i = 0; i < kRows; ++i) {
    for (int64_t j = 0; j < kCols; ++j) rows[i] += backend.At(i, j) * dy[j];
  }
  double norm = 0;
  for (int64_t j = 0; j < kCols; ++j) {
    double back = 0;
    for (int64_t i = 0; i < kRows; ++i) back += backend.At(i, j) * s.inv_dr[i] * rows[i];
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

TEST(SchurCg, ReachesTheResidualAskedFor) {
  for (double relative : {1e-2, 1e-6, 1e-10}) {
    DensePlanBackend backend(7);
    SchurSystem s = SystemFor(backend, /*inactive=*/kCols - 1, 8);
    s.relative_target = relative;
    std::vector<double> dy;
    int64_t iterations = 0;
    ASSERT_TRUE(backend.SolveSchur(s, &dy, &iterations).ok());
    ASSERT_EQ(static_cast<int64_t>(dy.size()), kCols);
    EXPECT_LE(ResidualNorm(backend, s, dy), relative * Norm(s.rhs)) << relative;
    EXPECT_GT(iterations, 0);
    EXPECT_LT(iterations, s.max_iterations);
    EXPECT_EQ(dy[kCols - 1], 0.0);
  }
}

TEST(SchurCg, TighterTargetsTakeMoreSteps) {
  DensePlanBackend backend(11);
  SchurSystem s = SystemFor(backend, /*inactive=*/3, 12);
  int64_t loose = 0, tight = 0;
  std::vector<double> dy;
  s.relative_target = 1e-2;
  ASSERT_TRUE(backend.SolveSchur(s, &dy, &loose).ok());
  s.relative_target = 1e-10;
  ASSERT_TRUE(backend.SolveSchur(s, &dy, &tight).ok());
  EXPECT_LT(loose, tight);
  EXPECT_EQ(dy[3], 0.0);
}

TEST(SchurCg, StopsAtItsIterationLimit) {
  DensePlanBackend backend(13);
  SchurSystem s = SystemFor(backend, /*inactive=*/0, 14);
  s.relative_target = 0;
  s.max_iterations = 3;
  std::vector<double> dy;
  int64_t iterations = 0;
  ASSERT_TRUE(backend.SolveSchur(s, &dy, &iterations).ok());
  EXPECT_EQ(iterations, 3);
  EXPECT_LT(ResidualNorm(backend, s, dy), Norm(s.rhs));  // three steps did reduce it
}

TEST(SchurCg, ZeroRightHandSideTakesNoStep) {
  DensePlanBackend backend(15);
  SchurSystem s = SystemFor(backend, /*inactive=*/0, 16);
  s.rhs.assign(kCols, 0.0);
  s.relative_target = 0;
  std::vector<double> dy;
  int64_t iterations = -1;
  ASSERT_TRUE(backend.SolveSchur(s, &dy, &iterations).ok());
  EXPECT_EQ(iterations, 0);
  EXPECT_EQ(dy, std::vector<double>(kCols, 0.0));
}

}  // namespace
}  // namespace solverd::ot::internal
