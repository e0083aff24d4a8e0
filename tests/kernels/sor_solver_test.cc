// SOR, SSOR and CG on both backends against dense references and theory.
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "cuda_test_util.h"
#include "sor/sor.h"
#include "sor_test_util.h"

namespace solverd::sor {
namespace {

constexpr double kPi = 3.14159265358979323846;

// A random non-symmetric, strictly diagonally dominant sparse matrix.
CsrMatrix RandomDominant(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  CsrMatrix a;
  a.n = n;
  a.row_ptr.push_back(0);
  for (int i = 0; i < n; ++i) {
    double off = 0;
    for (int j = 0; j < n; ++j) {
      if (j != i && (rng() % 3 != 0)) continue;
      const double v = j == i ? 0 : u(rng);
      a.col_idx.push_back(j);
      a.values.push_back(v);
      off += std::abs(v);
    }
    for (int64_t k = a.row_ptr.back(); k < a.nnz(); ++k) {
      if (a.col_idx[k] == i) a.values[k] = off + 1 + std::abs(u(rng));
    }
    a.row_ptr.push_back(a.nnz());
  }
  return a;
}

// Textbook Gauss-Seidel on the dense form of A.
std::vector<double> GaussSeidel(const CsrMatrix& a, const std::vector<double>& b, int sweeps) {
  std::vector<double> dense(static_cast<size_t>(a.n) * a.n, 0.0), x(a.n, 0.0);
  for (int i = 0; i < a.n; ++i) {
    for (int64_t k = a.row_ptr[i]; k < a.row_ptr[i + 1]; ++k) dense[i * a.n + a.col_idx[k]] = a.values[k];
  }
  for (int s = 0; s < sweeps; ++s) {
    for (int i = 0; i < a.n; ++i) {
      double sum = b[i];
      for (int j = 0; j < a.n; ++j) if (j != i) sum -= dense[i * a.n + j] * x[j];
      x[i] = sum / dense[i * a.n + i];
    }
  }
  return x;
}

Result SolveCpu(const CsrMatrix& a, const std::vector<double>& b, Options o,
                Status* status = nullptr) {
  const SweepOrder order = o.ordering == Ordering::kNatural ? NaturalOrder(a.n) : MulticolorOrder(a);
  Result r;
  Status s = ValidateOptions(Device::Cpu(), a, o);
  if (s.ok()) s = Solve(Device::Cpu(), nullptr, a, order, b, {}, o, nullptr, nullptr, &r);
  if (status != nullptr) *status = s; else EXPECT_TRUE(s.ok()) << s.ToString();
  return r;
}

TEST(SorSolver, OmegaOneNaturalOrderIsGaussSeidel) {
  const CsrMatrix a = RandomDominant(40, 1);
  ASSERT_TRUE(ValidateCsr(a, "a").ok());
  const std::vector<double> b = RandomVector(40, 2);
  Options o;
  o.ordering = Ordering::kNatural;
  o.omega = 1;
  o.max_iterations = 3;
  o.tolerance = 1e-15;
  const Result r = SolveCpu(a, b, o);
  const std::vector<double> want = GaussSeidel(a, b, 3);
  ASSERT_EQ(r.iterations, 3);
  for (int i = 0; i < a.n; ++i) EXPECT_NEAR(r.x[i], want[i], 1e-13) << i;
}

TEST(SorSolver, PoissonOptimalOmegaMatchesTheory) {
  const int m = 31;  // h = 1/32
  const double h = 1.0 / (m + 1);
  const CsrMatrix a = Laplacian2d(m, m);
  const std::vector<double> b = RandomVector(a.n, 3);
  Options o;
  o.tolerance = 1e-8;
  o.max_iterations = 20000;
  const double omega_star = 2 / (1 + std::sin(kPi * h));
  o.omega = omega_star;
  const Result best = SolveCpu(a, b, o);
  o.omega = 1;
  const Result gs = SolveCpu(a, b, o);
  ASSERT_TRUE(best.converged && gs.converged);
  // Spectral radii: Gauss-Seidel cos^2(pi h), optimal SOR omega* - 1.
  const double theory_best = std::log(1e-8) / std::log(omega_star - 1);
  const double theory_gs = std::log(1e-8) / std::log(std::pow(std::cos(kPi * h), 2));
  EXPECT_GT(best.iterations, theory_best / 2);
  EXPECT_LT(best.iterations, theory_best * 2);
  EXPECT_GT(gs.iterations, theory_gs / 2);
  EXPECT_LT(gs.iterations, theory_gs * 2);
  EXPECT_GT(gs.iterations, 8 * best.iterations);
}

TEST(SorSolver, MulticolorAndNaturalReachTheSameSolution) {
  const CsrMatrix a = Laplacian2d(12, 9, 0.3);
  const std::vector<double> b = RandomVector(a.n, 4);
  for (Method method : {Method::kSor, Method::kSsor}) {
    Options o;
    o.method = method;
    o.omega = 1.4;
    o.tolerance = 1e-12;
    const Result colored = SolveCpu(a, b, o);
    o.ordering = Ordering::kNatural;
    const Result natural = SolveCpu(a, b, o);
    ASSERT_TRUE(colored.converged && natural.converged);
    for (int i = 0; i < a.n; ++i) EXPECT_NEAR(colored.x[i], natural.x[i], 1e-9);
  }
}

TEST(SorSolver, MulticolorOrderOfAStencilIsRedBlack) {
  const CsrMatrix a = Laplacian2d(7, 5);
  const SweepOrder order = MulticolorOrder(a);
  ASSERT_EQ(order.groups(), 2);
  for (int64_t g = 0; g < 2; ++g) {
    for (int64_t k = order.group_ptr[g]; k < order.group_ptr[g + 1]; ++k) {
      const int r = order.rows[k] / 7, c = order.rows[k] % 7;
      EXPECT_EQ((r + c) % 2, g);
    }
  }
}

TEST(SorSolver, SsorCgConvergesFasterThanCg) {
  const CsrMatrix a = Laplacian2d(40, 40);
  const std::vector<double> b = RandomVector(a.n, 5);
  Options o;
  o.method = Method::kCg;
  const Result cg = SolveCpu(a, b, o);
  o.method = Method::kSsorCg;
  o.omega = 1.5;
  const Result pcg = SolveCpu(a, b, o);
  ASSERT_TRUE(cg.converged && pcg.converged);
  EXPECT_LT(pcg.iterations, cg.iterations);
  std::vector<double> ax(a.n);
  Multiply(a, pcg.x.data(), ax.data(), 1);
  double err = 0, norm = 0;
  for (int i = 0; i < a.n; ++i) { err += (ax[i] - b[i]) * (ax[i] - b[i]); norm += b[i] * b[i]; }
  EXPECT_LE(std::sqrt(err / norm), 1e-8);
}

TEST(SorSolver, CgRejectsNonSymmetricAndIndefiniteMatrices) {
  Options o;
  o.method = Method::kSsorCg;
  const CsrMatrix skew = RandomDominant(20, 6);
  Status s = ValidateOptions(Device::Cpu(), skew, o);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("not symmetric"), std::string::npos) << s.message();

  CsrMatrix negative = Laplacian2d(6, 6);
  for (double& v : negative.values) v = -v;
  SolveCpu(negative, RandomVector(negative.n, 7), o, &s);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("positive definite"), std::string::npos) << s.message();
}

TEST(SorSolver, MalformedCsrIsRejectedNamingTheRow) {
  const CsrMatrix good = Laplacian2d(3, 3);
  ASSERT_TRUE(ValidateCsr(good, "a").ok());
  auto expect_bad = [](const CsrMatrix& a, const std::string& needle) {
    const Status s = ValidateCsr(a, "systems[0].a");
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
  };
  CsrMatrix a = good;
  std::swap(a.col_idx[0], a.col_idx[1]);
  expect_bad(a, "not sorted");
  a = good;
  a.col_idx[2] = 9;
  expect_bad(a, "out of range");
  a = good;
  a.values[0] = 0;
  expect_bad(a, "zero diagonal");
  a = good;
  a.values[1] = std::nan("");
  expect_bad(a, "not finite");
  a = good;
  a.row_ptr.pop_back();
  expect_bad(a, "row_ptr");
}

TEST(SorSolver, ZeroRightHandSideAndCancellation) {
  const CsrMatrix a = Laplacian2d(5, 5);
  const Result zero = SolveCpu(a, std::vector<double>(a.n, 0.0), Options());
  EXPECT_TRUE(zero.converged);
  EXPECT_EQ(zero.iterations, 0);
  for (double v : zero.x) EXPECT_EQ(v, 0);

  CancelToken cancel;
  cancel.Cancel();
  Result r;
  const Status s = Solve(Device::Cpu(), nullptr, a, MulticolorOrder(a), RandomVector(a.n, 8), {},
                         Options(), nullptr, &cancel, &r);
  EXPECT_EQ(s.code(), StatusCode::kCancelled);
  EXPECT_EQ(r.x.size(), static_cast<size_t>(a.n));
}

TEST(SorSolver, OmegaOutsideTheOpenIntervalIsRejected) {
  Options o;
  o.omega = 2;
  EXPECT_EQ(ValidateOptions(Device::Cpu(), Laplacian2d(2, 2), o).code(),
            StatusCode::kInvalidArgument);
}

// The CUDA backend computes the same function: same iterations, same x.
TEST(SorSolverCuda, MatchesCpu) {
  SOLVERD_REQUIRE_CUDA();
  TestStream stream;
  ASSERT_TRUE(stream.status().ok()) << stream.status().ToString();
  const CsrMatrix a = Laplacian2d(60, 50, 0.1);
  const SweepOrder order = MulticolorOrder(a);
  const std::vector<double> b = RandomVector(a.n, 9);
  for (Method method : {Method::kSor, Method::kSsor, Method::kSsorCg, Method::kCg}) {
    Options o;
    o.method = method;
    o.omega = 1.6;
    Result cpu, gpu;
    ASSERT_TRUE(Solve(Device::Cpu(), nullptr, a, order, b, {}, o, nullptr, nullptr, &cpu).ok());
    const Status s = Solve(Device::Cuda(0), stream.get(), a, order, b, {}, o, nullptr, nullptr, &gpu);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_TRUE(gpu.converged);
    EXPECT_NEAR(gpu.iterations, cpu.iterations, 1) << static_cast<int>(method);
    for (int i = 0; i < a.n; ++i) EXPECT_NEAR(gpu.x[i], cpu.x[i], 1e-7) << i;
  }
}

TEST(SorSolverCuda, RejectsNaturalOrdering) {
  SOLVERD_REQUIRE_CUDA();
  Options o;
  o.ordering = Ordering::kNatural;
  EXPECT_EQ(ValidateOptions(Device::Cuda(0), Laplacian2d(3, 3), o).code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace solverd::sor
