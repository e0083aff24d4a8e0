// SolveBatch: a batch of systems with one pattern, solved in lockstep, gives
// each system exactly what a solve of its own gives, on both backends.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cuda_test_util.h"
#include "sor/sor.h"
#include "sor_test_util.h"

namespace solverd::sor {
namespace {

// Systems of one pattern that converge at different speeds: a 2D Laplacian
// with a shift per system, its own b and omega.
struct Sequence {
  explicit Sequence(int count, int nx = 12) {
    for (int s = 0; s < count; ++s) {
      matrices.push_back(Laplacian2d(nx, nx, 0.05 * (s % 5)));
      rhs.push_back(RandomVector(matrices.back().n, 100 + s));
    }
    for (int s = 0; s < count; ++s) {
      systems.push_back({&matrices[s], &rhs[s], &no_x0, 1.0 + 0.9 * s / count});
    }
  }
  std::vector<CsrMatrix> matrices;
  std::vector<std::vector<double>> rhs;
  const std::vector<double> no_x0;
  std::vector<BatchSystem> systems;
};

void ExpectSameAsOneByOne(const Device& device, StreamHandle stream, Method method) {
  Sequence seq(9);
  const SweepOrder order = MulticolorOrder(seq.matrices[0]);
  Options o;
  o.method = method;
  std::vector<Result> batch;
  std::vector<Status> statuses;
  const Status s = SolveBatch(device, stream, seq.systems, order, o, nullptr, nullptr, &batch,
                              &statuses);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(batch.size(), seq.systems.size());
  for (size_t k = 0; k < seq.systems.size(); ++k) {
    EXPECT_TRUE(statuses[k].ok()) << statuses[k].ToString();
    Options single = o;
    single.omega = seq.systems[k].omega;
    Result alone;
    ASSERT_TRUE(Solve(device, stream, seq.matrices[k], order, seq.rhs[k], {}, single, nullptr,
                      nullptr, &alone).ok());
    EXPECT_TRUE(batch[k].converged) << k;
    EXPECT_EQ(batch[k].iterations, alone.iterations) << k;
    EXPECT_DOUBLE_EQ(batch[k].relative_residual, alone.relative_residual) << k;
    for (size_t i = 0; i < alone.x.size(); ++i) ASSERT_DOUBLE_EQ(batch[k].x[i], alone.x[i]) << k;
  }
}

TEST(SorBatch, EverySystemGetsItsOwnSolve) {
  for (Method m : {Method::kSor, Method::kSsor, Method::kSsorCg, Method::kCg}) {
    SCOPED_TRACE(static_cast<int>(m));
    ExpectSameAsOneByOne(Device::Cpu(), nullptr, m);
  }
}

TEST(SorBatch, IterationCountsDifferAcrossTheBatch) {
  Sequence seq(6);
  std::vector<Result> results;
  std::vector<Status> statuses;
  ASSERT_TRUE(SolveBatch(Device::Cpu(), nullptr, seq.systems, MulticolorOrder(seq.matrices[0]),
                         Options(), nullptr, nullptr, &results, &statuses).ok());
  EXPECT_NE(results.front().iterations, results.back().iterations);
}

// One indefinite system fails alone; a zero right-hand side is solved by 0.
TEST(SorBatch, OneBadSystemDoesNotStopTheOthers) {
  Sequence seq(3);
  for (double& v : seq.matrices[1].values) v = -v;
  std::fill(seq.rhs[2].begin(), seq.rhs[2].end(), 0.0);
  Options o;
  o.method = Method::kSsorCg;
  std::vector<Result> results;
  std::vector<Status> statuses;
  ASSERT_TRUE(SolveBatch(Device::Cpu(), nullptr, seq.systems, MulticolorOrder(seq.matrices[0]), o,
                         nullptr, nullptr, &results, &statuses).ok());
  EXPECT_TRUE(statuses[0].ok());
  EXPECT_TRUE(results[0].converged);
  EXPECT_EQ(statuses[1].code(), StatusCode::kInvalidArgument);
  EXPECT_NE(statuses[1].message().find("positive definite"), std::string::npos);
  EXPECT_FALSE(results[1].converged);
  EXPECT_TRUE(results[2].converged);
  EXPECT_EQ(results[2].iterations, 0);
  for (double v : results[2].x) EXPECT_EQ(v, 0);
}

TEST(SorBatch, RejectsMixedPatternsAndOversizedBatches) {
  Sequence seq(2);
  const CsrMatrix other = Laplacian2d(6, 24);  // same n, another pattern
  seq.systems[1].a = &other;
  std::vector<Result> results;
  std::vector<Status> statuses;
  Status s = SolveBatch(Device::Cpu(), nullptr, seq.systems, MulticolorOrder(seq.matrices[0]),
                        Options(), nullptr, nullptr, &results, &statuses);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("system 1"), std::string::npos) << s.message();

  Sequence big(kMaxBatch + 1, 3);
  s = SolveBatch(Device::Cpu(), nullptr, big.systems, MulticolorOrder(big.matrices[0]),
                 Options(), nullptr, nullptr, &results, &statuses);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
}

TEST(SorBatchCuda, EverySystemGetsItsOwnSolve) {
  SOLVERD_REQUIRE_CUDA();
  TestStream stream;
  ASSERT_TRUE(stream.status().ok()) << stream.status().ToString();
  for (Method m : {Method::kSor, Method::kSsor, Method::kSsorCg, Method::kCg}) {
    SCOPED_TRACE(static_cast<int>(m));
    ExpectSameAsOneByOne(Device::Cuda(0), stream.get(), m);
  }
}

// A full batch on the device agrees with the CPU backend.
TEST(SorBatchCuda, FullBatchMatchesCpu) {
  SOLVERD_REQUIRE_CUDA();
  TestStream stream;
  ASSERT_TRUE(stream.status().ok()) << stream.status().ToString();
  Sequence seq(kMaxBatch, 20);
  const SweepOrder order = MulticolorOrder(seq.matrices[0]);
  std::vector<Result> cpu, gpu;
  std::vector<Status> cpu_statuses, gpu_statuses;
  ASSERT_TRUE(SolveBatch(Device::Cpu(), nullptr, seq.systems, order, Options(), nullptr, nullptr,
                         &cpu, &cpu_statuses).ok());
  const Status s = SolveBatch(Device::Cuda(0), stream.get(), seq.systems, order, Options(),
                              nullptr, nullptr, &gpu, &gpu_statuses);
  ASSERT_TRUE(s.ok()) << s.ToString();
  for (int k = 0; k < kMaxBatch; ++k) {
    EXPECT_TRUE(gpu[k].converged) << k;
    EXPECT_NEAR(gpu[k].iterations, cpu[k].iterations, 1) << k;
    for (size_t i = 0; i < cpu[k].x.size(); ++i) ASSERT_NEAR(gpu[k].x[i], cpu[k].x[i], 1e-7) << k;
  }
}

}  // namespace
}  // namespace solverd::sor
