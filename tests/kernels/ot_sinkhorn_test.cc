// Tests of log-domain Sinkhorn: against a float64 reference, against exact
// OT as the regularisation shrinks, numerical stability, cancellation, and
// CPU/CUDA agreement (CUDA tests skip without a device).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "cuda_test_util.h"
#include "ot_test_util.h"
#include "ot/ot.h"
#include "ot/overrelaxation.h"

namespace solverd::ot {
namespace {

// Same problem with the cost matrix spelled out.
Problem WithDenseCost(Problem p) {
  for (int i = 0; i < p.n; ++i) {
    for (int j = 0; j < p.m; ++j) {
      double dx = p.x_points[2 * i] - p.y_points[2 * j];
      double dy = p.x_points[2 * i + 1] - p.y_points[2 * j + 1];
      p.cost.push_back(dx * dx + dy * dy);
    }
  }
  p.dim = 0;
  p.x_points.clear();
  p.y_points.clear();
  return p;
}

// Textbook Sinkhorn on K = exp(-eta C) in float64: only safe for small eta,
// which is where it serves as the reference. Returns the dense plan.
std::vector<double> ReferencePlan(const Problem& p, int iterations) {
  std::vector<double> k(p.n * p.m), u(p.n, 1.0), v(p.m, 1.0);
  for (size_t e = 0; e < k.size(); ++e) k[e] = std::exp(-p.eta * p.cost[e]);
  for (int it = 0; it < iterations; ++it) {
    for (int i = 0; i < p.n; ++i) {
      double s = 0;
      for (int j = 0; j < p.m; ++j) s += k[i * p.m + j] * v[j];
      u[i] = p.a[i] / s;
    }
    for (int j = 0; j < p.m; ++j) {
      double s = 0;
      for (int i = 0; i < p.n; ++i) s += k[i * p.m + j] * u[i];
      v[j] = p.b[j] / s;
    }
  }
  std::vector<double> plan(k.size());
  for (int i = 0; i < p.n; ++i)
    for (int j = 0; j < p.m; ++j) plan[i * p.m + j] = u[i] * k[i * p.m + j] * v[j];
  return plan;
}

// Exact OT between uniform marginals of equal size is an assignment
// (Birkhoff); brute force over permutations for tiny n.
double ExactAssignmentCost(const Problem& p) {
  std::vector<int> perm(p.n);
  std::iota(perm.begin(), perm.end(), 0);
  double best = INFINITY;
  do {
    double c = 0;
    for (int i = 0; i < p.n; ++i) c += p.cost[i * p.m + perm[i]];
    best = std::min(best, c / p.n);
  } while (std::next_permutation(perm.begin(), perm.end()));
  return best;
}

Options Tight(Method method = Method::kSinkhorn) {
  Options o;
  o.method = method;
  o.tolerance = 1e-10;
  o.max_iterations = 100000;
  o.want_plan = true;
  return o;
}

TEST(SinkhornCpu, MatchesFloat64Reference) {
  Problem p = WithDenseCost(RandomPointClouds(40, 30, 5.0, 1));
  Result r;
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, Tight(), nullptr, nullptr, &r).ok());
  EXPECT_EQ(r.termination, Termination::kConverged);
  EXPECT_LE(r.marginal_error, 1e-10);
  std::vector<double> ref = ReferencePlan(p, 5000);
  double ref_cost = 0;
  for (size_t e = 0; e < ref.size(); ++e) {
    EXPECT_NEAR(r.plan[e], ref[e], 1e-9) << "entry " << e;
    ref_cost += ref[e] * p.cost[e];
  }
  EXPECT_NEAR(r.transport_cost, ref_cost, 1e-9);
}

TEST(SinkhornCpu, SinglePrecisionKernelKeepsItsPromise) {
  // At tolerance 1e-6 on unit mass the CPU keeps K in single precision
  // (gibbs_kernel.h): the plan its potentials stand for, formed here in
  // double, is within what it reports, and that within the tolerance.
  Problem p = WithDenseCost(RandomPointClouds(200, 150, 100.0, 3));
  Options o;
  o.method = Method::kSinkhorn;
  o.tolerance = 1e-6;
  o.max_iterations = 100000;
  Result r, tight;
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, o, nullptr, nullptr, &r).ok());
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, Tight(), nullptr, nullptr, &tight).ok());
  ASSERT_EQ(r.termination, Termination::kConverged);
  std::vector<double> rows(p.n, 0.0), columns(p.m, 0.0);
  double cost = 0;
  for (int i = 0; i < p.n; ++i) {
    for (int j = 0; j < p.m; ++j) {
      const double plan = std::exp(p.eta * (r.x[i] + r.y[j] - p.cost[i * p.m + j]) - 1);
      rows[i] += plan;
      columns[j] += plan;
      cost += plan * p.cost[i * p.m + j];
    }
  }
  double error = 0;
  for (int i = 0; i < p.n; ++i) error += std::fabs(rows[i] - p.a[i]);
  for (int j = 0; j < p.m; ++j) error += std::fabs(columns[j] - p.b[j]);
  EXPECT_LE(error, r.marginal_error);
  EXPECT_LE(r.marginal_error, o.tolerance);
  EXPECT_NEAR(r.transport_cost, cost, 1e-7 * cost);
  EXPECT_NEAR(r.transport_cost, tight.transport_cost, 1e-5 * tight.transport_cost);
}

TEST(SinkhornCpu, ApproachesExactOtAsRegularisationShrinks) {
  // A random dense cost has a unique optimal assignment.
  std::mt19937 rng(4);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  Problem p;
  p.n = p.m = 6;
  for (int e = 0; e < 36; ++e) p.cost.push_back(u(rng));
  p.a.assign(6, 1.0 / 6);
  p.b.assign(6, 1.0 / 6);
  const double exact = ExactAssignmentCost(p);
  double previous_gap = INFINITY;
  for (double eta : {10.0, 100.0, 1000.0}) {
    p.eta = eta;
    Options o;
    o.method = Method::kSinkhorn;
    // Sinkhorn slows down sharply as eta grows (what SNS is for), so the
    // tolerance is loose enough for plain Sinkhorn to reach at eta = 1000.
    o.tolerance = 1e-6;
    o.max_iterations = 1000000;
    Result r;
    ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, o, nullptr, nullptr, &r).ok());
    ASSERT_EQ(r.termination, Termination::kConverged) << "eta " << eta;
    double gap = r.transport_cost - exact;
    // A feasible plan never beats the optimum; ours is off by at most its
    // marginal error times max C (< 1).
    EXPECT_GE(gap, -o.tolerance) << "eta " << eta;
    EXPECT_LT(gap, previous_gap) << "eta " << eta;
    previous_gap = gap;
  }
  EXPECT_LT(previous_gap, 5e-3);  // entropic bias is O(log n / eta)
}

TEST(SinkhornCpu, StableForLargeEtaTimesCost) {
  Problem p = WithDenseCost(RandomPointClouds(50, 50, 1.0, 3));
  double cmax = *std::max_element(p.cost.begin(), p.cost.end());
  p.eta = 2e4 / cmax;  // eta * max(C) = 2e4: plain Sinkhorn underflows here
  Options o;
  o.method = Method::kSinkhorn;
  o.tolerance = 0;
  o.max_iterations = 3000;  // converges slowly at this eta; stability is the point
  Result first, r;
  o.max_iterations = 1;
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, o, nullptr, nullptr, &first).ok());
  o.max_iterations = 3000;
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, o, nullptr, nullptr, &r).ok());
  EXPECT_TRUE(std::isfinite(r.transport_cost));
  EXPECT_TRUE(std::isfinite(r.entropic_objective));
  for (double v : r.x) EXPECT_TRUE(std::isfinite(v));
  for (double v : r.y) EXPECT_TRUE(std::isfinite(v));
  EXPECT_TRUE(std::isfinite(r.marginal_error));
  EXPECT_LT(r.marginal_error, 0.2 * first.marginal_error);
}

TEST(SinkhornCpu, ZeroMassRowsGetNoTransport) {
  Problem p = WithDenseCost(RandomPointClouds(5, 4, 10.0, 4));
  p.a = {0.5, 0.0, 0.25, 0.25, 0.0};
  Result r;
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, Tight(), nullptr, nullptr, &r).ok());
  for (int j = 0; j < 4; ++j) {
    EXPECT_EQ(r.plan[1 * 4 + j], 0.0);
    EXPECT_EQ(r.plan[4 * 4 + j], 0.0);
  }
  EXPECT_TRUE(std::isfinite(r.transport_cost));
  EXPECT_LE(r.marginal_error, 1e-10);
}

// ||P1 - a||_1 + ||P^T 1 - b||_1 of a dense plan.
double PlanMarginalError(const Problem& p, const std::vector<double>& plan) {
  double error = 0;
  for (int i = 0; i < p.n; ++i) {
    double row = 0;
    for (int j = 0; j < p.m; ++j) row += plan[i * p.m + j];
    error += std::fabs(row - p.a[i]);
  }
  for (int j = 0; j < p.m; ++j) {
    double column = 0;
    for (int i = 0; i < p.n; ++i) column += plan[i * p.m + j];
    error += std::fabs(column - p.b[j]);
  }
  return error;
}

// The iterations measure the row error, the whole error once an update has
// balanced the columns. Here the starting potentials (zero) balance the rows
// exactly but leave the columns 0.8 off: a solve must not stop there as
// converged, and one allowed no iterations reports the whole error.
TEST(SinkhornCpu, StopsOnlyOnTheWholeMarginalError) {
  Problem p;
  p.n = p.m = 2;
  p.eta = 1;
  // exp(-eta C - 1) = 1/4 everywhere: rows 1/2 = a, columns 1/2 against b.
  p.cost.assign(4, -1 - std::log(0.25));
  p.a = {0.5, 0.5};
  p.b = {0.9, 0.1};
  for (Method method : {Method::kSinkhorn, Method::kSns, Method::kAuto}) {
    Options o = Tight(method);
    Result r;
    ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, o, nullptr, nullptr, &r).ok());
    EXPECT_EQ(r.termination, Termination::kConverged);
    EXPECT_GT(r.iterations, 0);
    EXPECT_LE(PlanMarginalError(p, r.plan), 1e-10);
    o.max_iterations = 0;
    ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, o, nullptr, nullptr, &r).ok());
    EXPECT_EQ(r.termination, Termination::kMaxIterations);
    EXPECT_NEAR(r.marginal_error, 0.8, 1e-12);
    EXPECT_NEAR(PlanMarginalError(p, r.plan), 0.8, 1e-12);
  }
}

// --- Over-relaxation (overrelaxation.h) ---

// Tuned, fixed and classic Sinkhorn reach the same plan; tuned in a
// fraction of the iterations (here classic takes about 4000).
TEST(SinkhornCpu, OverrelaxationReachesTheClassicSolutionFaster) {
  const Problem p = WithDenseCost(RandomPointClouds(120, 100, 1000.0, 21));
  Options o = Tight();
  o.tolerance = 1e-9;
  Result classic, fixed, tuned;
  o.overrelaxation = 1;
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, o, nullptr, nullptr, &classic).ok());
  o.overrelaxation = 1.5;
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, o, nullptr, nullptr, &fixed).ok());
  o.overrelaxation = 0;
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, o, nullptr, nullptr, &tuned).ok());
  for (const Result* r : {&classic, &fixed, &tuned}) {
    EXPECT_EQ(r->termination, Termination::kConverged);
    EXPECT_LE(PlanMarginalError(p, r->plan), o.tolerance);
    EXPECT_NEAR(r->transport_cost, classic.transport_cost, 1e-7 * classic.transport_cost);
    EXPECT_NEAR(r->entropic_objective, classic.entropic_objective,
                1e-7 * std::fabs(classic.entropic_objective));
  }
  EXPECT_GT(classic.iterations, 2000);
  EXPECT_LT(fixed.iterations, classic.iterations / 2);
  EXPECT_LT(tuned.iterations, classic.iterations / 4);
}

// A relaxed column update leaves the columns off their marginal, which the
// next row pass cannot see: what a solve reports must count it. Stopped
// early, the reported error is the returned plan's, by the cached kernel
// and by log-domain steps (eta * C past what the kernel can hold).
TEST(SinkhornCpu, ReportedErrorCountsWhatRelaxedColumnsLeave) {
  Problem kernel_case = WithDenseCost(RandomPointClouds(60, 50, 300.0, 22));
  Problem log_case = WithDenseCost(RandomPointClouds(40, 40, 1.0, 23));
  log_case.eta = 2e4 / *std::max_element(log_case.cost.begin(), log_case.cost.end());
  for (const Problem* p : {&kernel_case, &log_case}) {
    Options o = Tight();
    o.overrelaxation = 1.8;
    o.max_iterations = 37;
    Result r;
    ASSERT_TRUE(Solve(Device::Cpu(), nullptr, *p, o, nullptr, nullptr, &r).ok());
    EXPECT_EQ(r.termination, Termination::kMaxIterations);
    const double truth = PlanMarginalError(*p, r.plan);
    EXPECT_GT(truth, 1e-6);
    EXPECT_NEAR(r.marginal_error, truth, 1e-9 * truth) << "n = " << p->n;
  }
}

// A relaxed step keeps at least kMinRelaxedGain of the plain step's gain
// in the dual objective (a / eta times h(s) = s - e^s + 1 at log(r / a) =
// s): the rows that would not take the plain step, and only those.
TEST(Overrelaxation, PlainStepsExactlyWhereRelaxedOnesWouldLoseTheGain) {
  const auto shortfall = [](double s) { return s - std::expm1(s); };
  const auto keeps_gain = [&](double s, double omega) {
    const double plain_gain = -shortfall(s);
    return shortfall((1 - omega) * s) - shortfall(s) >= internal::kMinRelaxedGain * plain_gain;
  };
  EXPECT_EQ(internal::RelaxationFor(1).min_log_ratio, kNegInf);
  for (double omega : {1.2, 1.5, 1.8, 1.95}) {
    const Relaxation r = internal::RelaxationFor(omega);
    EXPECT_EQ(r.omega, omega);
    ASSERT_LT(r.min_log_ratio, 0);
    for (double s = -40; s <= 40; s += 0.01) {
      if (std::fabs(s - r.min_log_ratio) < 1e-6) continue;
      const bool relaxed = RelaxationFactor(s, r) == omega;
      EXPECT_EQ(relaxed, keeps_gain(s, omega)) << "omega " << omega << ", log ratio " << s;
    }
  }
}

// Young's rule from the measured rates, then backing off when the error
// grows; a fixed omega stays.
TEST(Overrelaxation, TunerFollowsYoungsRuleAndBacksOff) {
  internal::RelaxationTuner tuner;
  tuner.BeginStage(0);
  EXPECT_EQ(tuner.relaxation().omega, 1);
  // Classic Sinkhorn at 0.99 an iteration: omega = 2 / (1 + sqrt(1 - 0.99)).
  double error = 1;
  for (int64_t it = 10; it <= 30; it += 10) tuner.Observe(it, error *= std::pow(0.99, 10));
  const double omega = tuner.relaxation().omega;
  EXPECT_NEAR(omega, 2 / 1.1, 1e-9);
  // At that omega the iteration converges at omega - 1 (Young): it stays.
  for (int64_t it = 40; it <= 200; it += 10) tuner.Observe(it, error *= std::pow(omega - 1, 10));
  EXPECT_EQ(tuner.relaxation().omega, omega);
  // A later stage keeps it.
  tuner.BeginStage(0);
  EXPECT_EQ(tuner.relaxation().omega, omega);
  // An error that grows halves omega - 1.
  for (int64_t it = 210; it <= 260; it += 10) tuner.Observe(it, error *= 2);
  EXPECT_LE(tuner.relaxation().omega, 1 + (omega - 1) / 2 + 1e-12);
  EXPECT_GE(tuner.relaxation().omega, 1);

  internal::RelaxationTuner fixed;
  fixed.BeginStage(1.5);
  error = 1;
  for (int64_t it = 10; it <= 100; it += 10) fixed.Observe(it, error *= std::pow(0.999, 10));
  EXPECT_EQ(fixed.relaxation().omega, 1.5);
}

TEST(SinkhornCpu, PointCloudsMatchDenseCostAndThreadsAgree) {
  Problem points = RandomPointClouds(300, 200, 20.0, 5);
  Problem dense = WithDenseCost(points);
  Options o = Tight();
  o.tolerance = 1e-9;
  Result rp, rd;
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, points, o, nullptr, nullptr, &rp).ok());
  o.threads = 3;
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, dense, o, nullptr, nullptr, &rd).ok());
  EXPECT_EQ(rp.iterations, rd.iterations);
  EXPECT_NEAR(rp.transport_cost, rd.transport_cost, 1e-12);
  EXPECT_NEAR(rp.entropic_objective, rd.entropic_objective, 1e-12);
}

class CountingSink : public ProgressSink {
 public:
  void Report(const Progress& p) override { reports.push_back(p); }
  std::vector<Progress> reports;
};

TEST(SinkhornCpu, ReportsProgressEveryCheck) {
  Problem p = RandomPointClouds(50, 50, 50.0, 6);
  Options o;
  o.method = Method::kSinkhorn;
  o.tolerance = 0;
  o.max_iterations = 100;
  o.check_every = 10;
  CountingSink sink;
  Result r;
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, o, &sink, nullptr, &r).ok());
  EXPECT_EQ(r.termination, Termination::kMaxIterations);
  EXPECT_EQ(r.iterations, 100);
  ASSERT_EQ(sink.reports.size(), 11u);  // iterations 0, 10, ..., 100
  EXPECT_EQ(sink.reports.back().iteration, 100);
  EXPECT_EQ(sink.reports.back().stage, "sinkhorn");
  EXPECT_LT(sink.reports.back().residual, sink.reports.front().residual);
}

// Over-relaxed, the error rises for a while after omega changes; the
// fraction of the work reported done never goes back.
TEST(SinkhornCpu, ProgressNeverGoesBack) {
  const Problem p = WithDenseCost(RandomPointClouds(120, 100, 1000.0, 21));
  Options o = Tight();
  o.tolerance = 1e-9;
  CountingSink sink;
  Result r;
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, o, &sink, nullptr, &r).ok());
  ASSERT_GT(sink.reports.size(), 2u);
  bool error_rose = false;
  for (size_t k = 1; k < sink.reports.size(); ++k) {
    error_rose = error_rose || sink.reports[k].residual > sink.reports[k - 1].residual;
    EXPECT_GE(sink.reports[k].fraction, sink.reports[k - 1].fraction) << "report " << k;
  }
  EXPECT_TRUE(error_rose);  // else this case would not test it
  EXPECT_EQ(sink.reports.back().fraction, 1.0);
}

TEST(SinkhornCpu, CancelReturnsLastIterate) {
  Problem p = RandomPointClouds(50, 50, 50.0, 7);
  CancelToken token;
  token.Cancel();
  Result r;
  Status s = Solve(Device::Cpu(), nullptr, p, Options(), nullptr, &token, &r);
  EXPECT_EQ(s.code(), StatusCode::kCancelled);
  EXPECT_EQ(r.termination, Termination::kStopped);
  EXPECT_EQ(r.x.size(), 50u);
  EXPECT_GE(r.marginal_error, 0);
}

TEST(SinkhornCpu, DeadlineStops) {
  Problem p = RandomPointClouds(50, 50, 50.0, 8);
  CancelToken token;
  token.SetDeadline(CancelToken::Clock::now());
  Result r;
  Status s = Solve(Device::Cpu(), nullptr, p, Options(), nullptr, &token, &r);
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded);
}

TEST(SinkhornValidation, NamesTheField) {
  Problem good = WithDenseCost(RandomPointClouds(4, 3, 1.0, 9));
  ASSERT_TRUE(ValidateProblem(good).ok());
  auto expect_field = [](Problem p, const std::string& field) {
    Status s = ValidateProblem(p);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_EQ(s.message().rfind(field + ":", 0), 0u) << s.message();
  };
  Problem p = good;
  p.a[1] = -0.1;
  expect_field(p, "a");
  p = good;
  p.b[0] = NAN;
  expect_field(p, "b");
  p = good;
  p.b[0] *= 2;
  expect_field(p, "b");
  p = good;
  p.cost.pop_back();
  expect_field(p, "cost");
  p = good;
  p.cost[3] = INFINITY;
  expect_field(p, "cost");
  p = good;
  p.eta = 0;
  expect_field(p, "eta");
  p = good;
  p.n = 0;
  expect_field(p, "n");
  for (double omega : {-1.0, 0.5, 1.96, 2.0, static_cast<double>(NAN)}) {
    Options o;
    o.overrelaxation = omega;
    const Status s = ValidateOptions(o);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << omega;
    EXPECT_EQ(s.message().rfind("overrelaxation:", 0), 0u) << s.message();
  }
  for (double omega : {0.0, 1.0, 1.5, 1.95}) {
    Options o;
    o.overrelaxation = omega;
    EXPECT_TRUE(ValidateOptions(o).ok()) << omega;
  }
  // Scales past double range (found by job_spec_fuzz: points at 1e303 made
  // an infinite cost and NaN potentials).
  p = good;
  p.cost[2] = 1e250;
  expect_field(p, "cost");
  p = good;
  p.eta = 1e-250;
  expect_field(p, "eta");
  Problem points = RandomPointClouds(4, 3, 1.0, 9);
  points.y_points[1] = 1e303;
  expect_field(points, "points");
  points.y_points[1] = 1e90;  // squared: 4e180, still solvable at eta = 1
  EXPECT_TRUE(ValidateProblem(points).ok());
}

// --- CUDA backend: same function as the CPU one. ---

void ExpectSameSolve(const Problem& p, const Options& o) {
  Result cpu, gpu;
  ASSERT_TRUE(Solve(Device::Cpu(), nullptr, p, o, nullptr, nullptr, &cpu).ok());
  Status s = SolveOnCuda(p, o, &gpu);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(cpu.termination, gpu.termination);
  EXPECT_NEAR(cpu.iterations, gpu.iterations, 2);
  EXPECT_NEAR(cpu.transport_cost, gpu.transport_cost, 1e-9 * std::fabs(cpu.transport_cost) + 1e-12);
  EXPECT_NEAR(cpu.entropic_objective, gpu.entropic_objective,
              1e-9 * std::fabs(cpu.entropic_objective) + 1e-12);
  EXPECT_NEAR(gpu.marginal_error, cpu.marginal_error, 1e-9);
  ASSERT_EQ(cpu.plan.size(), gpu.plan.size());
  for (size_t e = 0; e < cpu.plan.size(); ++e) ASSERT_NEAR(cpu.plan[e], gpu.plan[e], 1e-9);
}

TEST(SinkhornCuda, MatchesCpuOnPointClouds) {
  SOLVERD_REQUIRE_CUDA();
  Options o = Tight();
  o.tolerance = 1e-9;
  ExpectSameSolve(RandomPointClouds(300, 170, 30.0, 10), o);
}

// 32 dimensions: the device computes C by a GEMM and the norms
// (point_cost_cuda.h), the CPU entry by entry; the points sit far from the
// origin, where the GEMM's route would round worst without its centring.
TEST(SinkhornCuda, MatchesCpuOnHighDimensionalPoints) {
  SOLVERD_REQUIRE_CUDA();
  Problem p = RandomPointClouds(200, 150, 2.0, 14, /*dim=*/32);
  for (double& v : p.x_points) v += 1e4;
  for (double& v : p.y_points) v += 1e4;
  Options o = Tight();
  o.tolerance = 1e-9;
  ExpectSameSolve(p, o);
}

TEST(SinkhornCuda, MatchesCpuOnDenseCostWithZeroMass) {
  SOLVERD_REQUIRE_CUDA();
  Problem p = WithDenseCost(RandomPointClouds(65, 129, 10.0, 11));
  p.a.assign(65, 1.0 / 64);
  p.a[7] = 0;
  ExpectSameSolve(p, Tight());
}

TEST(SinkhornCuda, StableForLargeEtaTimesCost) {
  SOLVERD_REQUIRE_CUDA();
  Problem p = WithDenseCost(RandomPointClouds(50, 50, 1.0, 12));
  p.eta = 2e4 / *std::max_element(p.cost.begin(), p.cost.end());
  Options o;
  o.method = Method::kSinkhorn;
  o.tolerance = 0;
  o.max_iterations = 3000;
  ExpectSameSolve(p, o);
}

TEST(SinkhornCuda, CancelReturnsLastIterate) {
  SOLVERD_REQUIRE_CUDA();
  Problem p = RandomPointClouds(64, 64, 50.0, 13);
  CancelToken token;
  token.Cancel();
  Result r;
  Status s = Solve(Device::Cuda(0), nullptr, p, Options(), nullptr, &token, &r);
  EXPECT_EQ(s.code(), StatusCode::kCancelled);
  EXPECT_EQ(r.y.size(), 64u);
}

}  // namespace
}  // namespace solverd::ot
