// Tests of Sinkhorn-Newton-Sparse and the auto method: agreement with
// Sinkhorn, the paper's random-assignment behaviour, adversarial inputs,
// and CPU/CUDA agreement (CUDA tests skip without a device).
#include <chrono>
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "cuda_test_util.h"
#include "ot_test_util.h"
#include "ot/driver_util.h"
#include "ot/ot.h"

namespace solverd::ot {
namespace {

Options With(Method method, double tolerance, int64_t max_iterations) {
  Options o;
  o.method = method;
  o.tolerance = tolerance;
  o.max_iterations = max_iterations;
  o.want_plan = true;
  return o;
}

void ExpectFinite(const Result& r) {
  EXPECT_TRUE(std::isfinite(r.transport_cost));
  EXPECT_TRUE(std::isfinite(r.entropic_objective));
  EXPECT_TRUE(std::isfinite(r.marginal_error));
  for (double v : r.plan) ASSERT_TRUE(std::isfinite(v));
}

TEST(Sns, AgreesWithSinkhorn) {
  Problem p = RandomCost(60, 60, 40, 1);
  Result sinkhorn, sns;
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, With(Method::kSinkhorn, 1e-11, 1000000), nullptr,
                    nullptr, &sinkhorn).ok());
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, With(Method::kSns, 1e-11, 1000), nullptr,
                    nullptr, &sns).ok());
  ASSERT_EQ(sns.termination, Termination::kConverged);
  EXPECT_GT(sns.newton_iterations, 0);
  EXPECT_LE(sns.marginal_error, 1e-11);
  EXPECT_NEAR(sns.transport_cost, sinkhorn.transport_cost, 1e-9);
  EXPECT_NEAR(sns.entropic_objective, sinkhorn.entropic_objective, 1e-9);
  for (size_t e = 0; e < sns.plan.size(); ++e) ASSERT_NEAR(sns.plan[e], sinkhorn.plan[e], 1e-10);
}

TEST(Sns, RandomAssignmentConvergesInFewIterations) {
  // The paper: 29 iterations at n = 500, eta = 1200; Sinkhorn needs tens of
  // thousands. n = 200 keeps the test fast with the same behaviour, except
  // that its first Newton step is damped and a window of Sinkhorn steps as
  // costly as that step follows (60 here, then 13 Newton steps): each gains
  // little on this problem, but together they cost about one Newton step.
  Problem p = RandomCost(200, 200, 1200, 2);
  Result r;
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, With(Method::kSns, 1e-9, 200), nullptr, nullptr,
                    &r).ok());
  EXPECT_EQ(r.termination, Termination::kConverged);
  EXPECT_LE(r.newton_iterations, 20);
  EXPECT_EQ(r.iterations, r.sinkhorn_iterations + r.newton_iterations);
  Result sinkhorn;
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, With(Method::kSinkhorn, 1e-9, 200), nullptr,
                    nullptr, &sinkhorn).ok());
  EXPECT_EQ(sinkhorn.termination, Termination::kMaxIterations);  // far from converged
  EXPECT_GT(sinkhorn.marginal_error, 1e3 * r.marginal_error);
}

TEST(Sns, AutoIsTheDefaultAndSwitchesToNewtonWhenSinkhornStalls) {
  EXPECT_EQ(Options().method, Method::kAuto);
  Problem hard = RandomCost(100, 100, 1000, 3);
  Result r;
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, hard, With(Method::kAuto, 1e-9, 1000), nullptr,
                    nullptr, &r).ok());
  EXPECT_EQ(r.termination, Termination::kConverged);
  EXPECT_GT(r.newton_iterations, 0);
  Problem easy = RandomCost(100, 100, 2, 4);  // Sinkhorn converges fast: no Newton
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, easy, With(Method::kAuto, 1e-9, 1000), nullptr,
                    nullptr, &r).ok());
  EXPECT_EQ(r.termination, Termination::kConverged);
  EXPECT_EQ(r.newton_iterations, 0);
}

// Auto moves on to Newton once Sinkhorn's rate predicts more iterations
// to go than the Newton stage costs (kNewtonStageCost), counting on a
// tuned omega to leave kTunedShare of what the plain rate predicts: on
// random assignment at the first prediction (iteration 21; Sinkhorn alone
// takes 21,300 classic, 850 tuned), on point clouds at eta = 100 at the
// first or second (tuned, about 70), on point clouds at eta = 50 and 20,
// where tuned Sinkhorn is done in 60 and 40, never.
TEST(Sns, AutoMovesOnWhenSinkhornHasFarToGoAndStaysWhenItIsNearlyDone) {
  for (unsigned seed : {2u, 5u}) {
    Problem assignment = RandomCost(500, 500, 1200, seed);
    Result r;
    ASSERT_TRUE(Solve(Device::Cpu(), nullptr, assignment, With(Method::kAuto, 1e-9, 1000),
                      nullptr, nullptr, &r).ok());
    EXPECT_EQ(r.termination, Termination::kConverged);
    EXPECT_GT(r.newton_iterations, 0);
    EXPECT_LE(r.sinkhorn_iterations, 30) << "seed " << seed;
  }
  for (double eta : {100.0, 50.0, 20.0}) {
    for (int n : {200, 500}) {
      Problem clouds = RandomPointClouds(n, n, eta, 7);
      Result r, alone;
      ASSERT_TRUE(Solve(Device::Cpu(), nullptr, clouds, With(Method::kAuto, 1e-6, 2000),
                        nullptr, nullptr, &r).ok());
      ASSERT_TRUE(Solve(Device::Cpu(), nullptr, clouds, With(Method::kSinkhorn, 1e-6, 2000),
                        nullptr, nullptr, &alone).ok());
      EXPECT_EQ(r.termination, Termination::kConverged);
      if (eta > 50) {
        EXPECT_GT(r.newton_iterations, 0) << "n = " << n << ", eta = " << eta;
        EXPECT_LE(r.sinkhorn_iterations, 40) << "n = " << n << ", eta = " << eta;
      } else {
        EXPECT_EQ(r.newton_iterations, 0) << "n = " << n << ", eta = " << eta;
        EXPECT_EQ(r.sinkhorn_iterations, alone.iterations) << "n = " << n << ", eta = " << eta;
      }
    }
  }
}

// auto moves on only once Sinkhorn's error is within kNewtonStartShare of
// the mass: on this W1 density case it used to at iteration 21, error 0.89,
// and took 151 Sinkhorn iterations around a damped Newton step; now at
// iteration 81, error 0.023, then full steps (81 + 4).
TEST(Sns, AutoMovesOnOnlyOnceSinkhornIsWithinATenthOfTheMass) {
  struct FirstNewtonError : ProgressSink {
    void Report(const Progress& p) override {
      if (p.stage == "newton" && error < 0) error = p.residual;
    }
    double error = -1;
  } sink;
  Problem densities = GridDensities(16, 1, 200, 2);
  Result r;
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, densities, With(Method::kAuto, 1e-9, 10000), &sink,
                    nullptr, &r).ok());
  EXPECT_EQ(r.termination, Termination::kConverged);
  ASSERT_GT(r.newton_iterations, 0);
  EXPECT_GT(sink.error, 0);
  EXPECT_LE(sink.error, internal::kNewtonStartShare);
  EXPECT_LE(r.sinkhorn_iterations, 100);
}

// Where the forcing term alone would leave the last Newton step short of
// the tolerance by less than kMaxTightening, CG solves that step to half
// the tolerance instead (sns_driver.cc's ForcingTerm()): one Newton step
// fewer on these point clouds (4 and 6 without).
TEST(Sns, LastNewtonStepAimsBelowTheTolerance) {
  struct Case {
    double eta, tolerance;
    int64_t newton_steps;
  };
  for (const Case& c : {Case{50, 1e-6, 3}, Case{100, 1e-8, 5}}) {
    Problem clouds = RandomPointClouds(200, 200, c.eta, 1);
    Result r;
    ASSERT_TRUE(Solve(Device::Cpu(), nullptr, clouds, With(Method::kSns, c.tolerance, 2000),
                      nullptr, nullptr, &r).ok());
    EXPECT_EQ(r.termination, Termination::kConverged);
    EXPECT_LE(r.marginal_error, c.tolerance);
    EXPECT_EQ(r.newton_iterations, c.newton_steps) << "eta = " << c.eta;
  }
}

// The batched CUDA loop runs an SNS problem's Sinkhorn stage and hands its
// potentials on (ContinueSnsCuda); on the CPU twin, the Newton stage from
// the potentials of 20 Sinkhorn iterations ends where SNS whole does.
TEST(Sns, NewtonStageFromHandedOverPotentialsEndsAsWholeSns) {
  for (const Problem& p : {RandomCost(120, 90, 1200, 3), RandomPointClouds(150, 150, 100, 4)}) {
    const Options sns = With(Method::kSns, 1e-9, 1000);
    Result whole, sinkhorn, continued;
    ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, sns, nullptr, nullptr, &whole).ok());
    Options first = With(Method::kSinkhorn, 1e-9, sns.sns_sinkhorn_steps);
    ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, first, nullptr, nullptr, &sinkhorn).ok());
    ASSERT_EQ(sinkhorn.termination, Termination::kMaxIterations);
    internal::SolveState state;  // as the batch leaves it
    state.sinkhorn_iterations = sinkhorn.sinkhorn_iterations;
    state.first_error = state.error = sinkhorn.marginal_error;
    state.error_current = true;
    ASSERT_TRUE(internal::ContinueSnsCpu(p, sns, sinkhorn.x, sinkhorn.y, nullptr, nullptr,
                                         &state, &continued).ok());
    EXPECT_EQ(continued.termination, Termination::kConverged);
    EXPECT_LE(continued.marginal_error, 1e-9);
    EXPECT_EQ(continued.sinkhorn_iterations, whole.sinkhorn_iterations);
    EXPECT_NEAR(continued.newton_iterations, whole.newton_iterations, 1);
    EXPECT_NEAR(continued.transport_cost, whole.transport_cost, 1e-9 * whole.transport_cost);
    ASSERT_EQ(continued.plan.size(), whole.plan.size());
    for (size_t e = 0; e < whole.plan.size(); ++e) {
      ASSERT_NEAR(continued.plan[e], whole.plan[e], 1e-8) << e;
    }
  }
}

// Admission control counts the Newton stage's sparse plan, which may keep
// every entry of the plan, for the methods that can reach it.
TEST(Sns, MemoryEstimateCountsTheSparsePlan) {
  const Problem p = RandomPointClouds(300, 200, 100, 5);
  const int64_t sinkhorn = EstimateBytes(p, With(Method::kSinkhorn, 1e-6, 100));
  for (Method method : {Method::kSns, Method::kAuto}) {
    EXPECT_GE(EstimateBytes(p, With(method, 1e-6, 100)), sinkhorn + 300 * 200 * 24);
  }
}

TEST(Sns, EachStageReportsItsOwnTime) {
  Problem p = RandomCost(200, 200, 1200, 2);
  Result sns, sinkhorn;
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, With(Method::kSns, 1e-9, 200), nullptr, nullptr,
                    &sns).ok());
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GT(sns.sinkhorn_seconds, 0);
  EXPECT_GT(sns.newton_seconds, 0);
  EXPECT_LE(sns.sinkhorn_seconds + sns.newton_seconds, wall);
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, With(Method::kSinkhorn, 1e-9, 200), nullptr,
                    nullptr, &sinkhorn).ok());
  EXPECT_GT(sinkhorn.sinkhorn_seconds, 0);
  EXPECT_EQ(sinkhorn.newton_seconds, 0);
}

TEST(Sns, ReportsNewtonStageInProgress) {
  struct Stages : ProgressSink {
    void Report(const Progress& p) override { stages.push_back(p.stage); }
    std::vector<std::string> stages;
  } sink;
  Problem p = RandomCost(80, 80, 500, 5);
  Result r;
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, With(Method::kSns, 1e-9, 500), &sink, nullptr,
                    &r).ok());
  ASSERT_FALSE(sink.stages.empty());
  EXPECT_EQ(sink.stages.front(), "sinkhorn");
  EXPECT_EQ(sink.stages.back(), "newton");
}

TEST(Sns, AdversarialInputsNeverGiveNaN) {
  for (Method method : {Method::kSns, Method::kAuto}) {
    // Zero marginal entries, non-square.
    Problem p = RandomCost(30, 30, 300, 6);
    p.m = 20;
    p.cost.resize(30 * 20);
    p.a.assign(30, 1.0 / 28);
    p.a[3] = p.a[17] = 0;
    p.b.assign(20, 1.0 / 19);
    p.b[5] = 0;
    Result r;
    ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, With(method, 1e-9, 2000), nullptr, nullptr,
                      &r).ok());
    ExpectFinite(r);
    EXPECT_LE(r.marginal_error, 1e-9);
    for (int j = 0; j < 20; ++j) EXPECT_EQ(r.plan[3 * 20 + j], 0.0);
    // n = 1, m = 1 with eta * C = 1e14: the potentials are ~1e8, so the
    // plan's exponent eta (x + y - C) carries ~1e-2 of rounding; finite,
    // and right to that precision.
    Problem one = RandomCost(1, 1, 1e6, 7);
    one.cost = {1e8};
    ASSERT_TRUE(Solve(Device::Cpu(), nullptr, one, With(method, 1e-12, 100), nullptr, nullptr,
                      &r).ok());
    ExpectFinite(r);
    EXPECT_NEAR(r.plan[0], 1.0, 1e-2);
    Problem huge = RandomCost(20, 20, 1e4, 8);
    for (double& c : huge.cost) c *= 1e3;
    ASSERT_TRUE(Solve(Device::Cpu(), nullptr, huge, With(method, 1e-8, 300), nullptr, nullptr,
                      &r).ok());
    ExpectFinite(r);
    Problem tiny = RandomCost(20, 20, 1e-9, 9);
    ASSERT_TRUE(Solve(Device::Cpu(), nullptr, tiny, With(method, 1e-12, 300), nullptr, nullptr,
                      &r).ok());
    ExpectFinite(r);
    EXPECT_LE(r.marginal_error, 1e-12);
  }
}

TEST(Sns, CancelReturnsLastIterate) {
  Problem p = RandomCost(50, 50, 1000, 10);
  CancelToken token;
  token.Cancel();
  Result r;
  Status s = Solve(Device::Cpu(), nullptr, p, With(Method::kSns, 1e-9, 100), nullptr, &token, &r);
  EXPECT_EQ(s.code(), StatusCode::kCancelled);
  EXPECT_EQ(r.termination, Termination::kStopped);
  EXPECT_EQ(r.x.size(), 50u);
}

TEST(SparsePlan, HoldsExactlyTheEntriesAboveTheThreshold) {
  Problem p = RandomCost(40, 40, 300, 12);
  Options o = With(Method::kAuto, 1e-9, 1000);
  o.sparse_plan_threshold = 1e-4;
  Result r;
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, o, nullptr, nullptr, &r).ok());
  size_t expected = 0;
  for (double v : r.plan) expected += v >= 1e-4;
  ASSERT_EQ(r.sparse_plan.values.size(), expected);
  ASSERT_GT(expected, 0u);
  for (size_t k = 0; k < expected; ++k) {
    EXPECT_DOUBLE_EQ(r.sparse_plan.values[k], r.plan[r.sparse_plan.rows[k] * 40 + r.sparse_plan.cols[k]]);
    if (k > 0) {
      EXPECT_LT(std::pair(r.sparse_plan.rows[k - 1], r.sparse_plan.cols[k - 1]),
                std::pair(r.sparse_plan.rows[k], r.sparse_plan.cols[k]));
    }
  }
  o.sparse_plan_threshold = 1e-300;  // everything: over the entry limit only if huge
  Problem big = RandomCost(1100, 1100, 1, 13);  // 1.21M entries > 2^20
  o.want_plan = false;
  Status s = Solve(Device::Cpu(), nullptr, big, o, nullptr, nullptr, &r);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
}

TEST(SnsCuda, MatchesCpu) {
  SOLVERD_REQUIRE_CUDA();
  for (Method method : {Method::kSns, Method::kAuto}) {
    Problem p = RandomCost(300, 300, 1200, 11);
    Result cpu, gpu;
    Options o = With(method, 1e-9, 500);
    ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, o, nullptr, nullptr, &cpu).ok());
    Status s = SolveOnCuda(p, o, &gpu);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(gpu.termination, Termination::kConverged);
    EXPECT_LE(gpu.marginal_error, 1e-9);
    EXPECT_NEAR(gpu.iterations, cpu.iterations, 3);
    EXPECT_NEAR(gpu.transport_cost, cpu.transport_cost, 1e-9);
    for (size_t e = 0; e < cpu.plan.size(); ++e) ASSERT_NEAR(gpu.plan[e], cpu.plan[e], 1e-9);
  }
  // Point clouds: at eta = 100 the Newton systems take the whole plan (the
  // device's COO of every entry), at 300 a sparse one of about 12%; both
  // with the coarse level (its seeds, aggregate sums and device kernels).
  for (double eta : {100.0, 300.0}) {
    Problem p = RandomPointClouds(300, 300, eta, 12);
    Result cpu, gpu;
    Options o = With(Method::kSns, 1e-9, 500);
    ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, o, nullptr, nullptr, &cpu).ok());
    Status s = SolveOnCuda(p, o, &gpu);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(gpu.termination, Termination::kConverged) << eta;
    EXPECT_LE(gpu.marginal_error, 1e-9) << eta;
    EXPECT_NEAR(gpu.newton_iterations, cpu.newton_iterations, 1) << eta;
    EXPECT_NEAR(gpu.transport_cost, cpu.transport_cost, 1e-9) << eta;
  }
  Problem p = RandomCost(100, 100, 300, 14);
  Options o = With(Method::kSinkhorn, 1e-9, 100000);
  o.sparse_plan_threshold = 1e-5;
  Result cpu, gpu;
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, o, nullptr, nullptr, &cpu).ok());
  ASSERT_TRUE(Solve(Device::Cuda(0), nullptr, p, o, nullptr, nullptr, &gpu).ok());
  EXPECT_EQ(cpu.sparse_plan.rows, gpu.sparse_plan.rows);
  EXPECT_EQ(cpu.sparse_plan.cols, gpu.sparse_plan.cols);
}

}  // namespace
}  // namespace solverd::ot
