// Tests of SolveBatch: on the CPU it is Solve() per problem; on CUDA the
// batched Sinkhorn loop gives each problem exactly what Solve() gives it
// alone (same kernels' math, same stopping test), runs the Newton stage of
// SNS and stalled `auto` problems from where it left them, hands sparse
// plans and other shapes to Solve(), and keeps cancellation per problem.
#include <vector>

#include <gtest/gtest.h>

#include "cuda_test_util.h"
#include "ot_test_util.h"
#include "ot/batch.h"
#include "ot/ot.h"

namespace solverd::ot {
namespace {

Options Sinkhorn(double tolerance, int check_every) {
  Options o;
  o.method = Method::kSinkhorn;
  o.tolerance = tolerance;
  o.check_every = check_every;
  return o;
}

// A mixed batch: varied eta, tolerances and check intervals, zero marginal
// entries, point clouds, a dense plan, an iteration cap, `auto`, SNS, and
// items the batched loop must hand on (a sparse plan, another shape).
std::vector<Problem> MixedProblems() {
  std::vector<Problem> problems;
  for (unsigned k = 0; k < 6; ++k) problems.push_back(RandomCost(40, 56, 10.0 * (k + 1), k));
  problems[2].a[5] = 0;
  problems[2].a[6] += 1.0 / 40;
  problems.push_back(RandomPointClouds(40, 56, 30, 7));
  problems.push_back(RandomCost(40, 56, 1200, 8));  // stalls under `auto`
  problems.push_back(RandomCost(40, 56, 50, 9));
  problems.push_back(RandomCost(40, 56, 50, 10));
  problems.push_back(RandomCost(24, 56, 50, 11));
  return problems;
}

std::vector<BatchItem> MixedItems(const std::vector<Problem>& problems) {
  std::vector<BatchItem> items(problems.size());
  for (size_t k = 0; k < problems.size(); ++k) {
    items[k].problem = &problems[k];
    items[k].options = Sinkhorn(k % 2 ? 1e-6 : 1e-9, 1 + static_cast<int>(k % 3) * 7);
  }
  items[3].options.want_plan = true;
  items[4].options.max_iterations = 37;
  items[5].options.method = Method::kAuto;
  items[7].options.method = Method::kAuto;
  items[8].options.method = Method::kSns;
  items[9].options.sparse_plan_threshold = 1e-4;
  return items;
}

void ExpectSameAsAlone(const Device& device, StreamHandle stream, const BatchItem& item) {
  Result alone;
  const Status s =
      Solve(device, stream, *item.problem, item.options, nullptr, nullptr, &alone);
  EXPECT_EQ(item.status.code(), s.code());
  if (device.is_cuda() && alone.newton_iterations > 0) {
    // CUDA's SNS gathers the sparse plan with atomics: the entries' order,
    // and so the last bits of every sum over them, vary from run to run.
    EXPECT_NEAR(item.result.transport_cost, alone.transport_cost,
                1e-9 * alone.transport_cost);
    EXPECT_LE(item.result.marginal_error, item.options.tolerance);
    return;
  }
  EXPECT_EQ(item.result.iterations, alone.iterations);
  EXPECT_EQ(item.result.newton_iterations, alone.newton_iterations);
  EXPECT_EQ(item.result.termination, alone.termination);
  EXPECT_EQ(item.result.marginal_error, alone.marginal_error);
  EXPECT_EQ(item.result.transport_cost, alone.transport_cost);
  EXPECT_EQ(item.result.entropic_objective, alone.entropic_objective);
  EXPECT_EQ(item.result.x, alone.x);
  EXPECT_EQ(item.result.y, alone.y);
  EXPECT_EQ(item.result.plan, alone.plan);
  EXPECT_EQ(item.result.sparse_plan.values, alone.sparse_plan.values);
}

TEST(OtBatch, OnTheCpuEachProblemIsSolvedAlone) {
  const std::vector<Problem> problems = MixedProblems();
  std::vector<BatchItem> items = MixedItems(problems);
  ASSERT_TRUE(SolveBatch(Device::Cpu(), nullptr, &items).ok());
  for (size_t k = 0; k < items.size(); ++k) {
    SCOPED_TRACE(k);
    EXPECT_FALSE(items[k].batched);
    ExpectSameAsAlone(Device::Cpu(), nullptr, items[k]);
  }
}

TEST(OtBatchCuda, EachProblemGetsWhatItGetsAlone) {
  SOLVERD_REQUIRE_CUDA();
  TestStream stream;
  ASSERT_TRUE(stream.status().ok());
  const std::vector<Problem> problems = MixedProblems();
  std::vector<BatchItem> items = MixedItems(problems);
  ASSERT_TRUE(SolveBatch(Device::Cuda(0), stream.get(), &items).ok());
  for (size_t k = 0; k < items.size(); ++k) {
    SCOPED_TRACE(k);
    // 7 (`auto`, stalls) and 8 (SNS) go on to Newton from the batch's
    // potentials; 9 and 10 never join.
    EXPECT_EQ(items[k].batched, k < 9) << k;
    ExpectSameAsAlone(Device::Cuda(0), stream.get(), items[k]);
  }
  EXPECT_EQ(items[4].result.termination, Termination::kMaxIterations);
  EXPECT_GT(items[7].result.newton_iterations, 0);
  EXPECT_GT(items[8].result.newton_iterations, 0);
}

TEST(OtBatchCuda, CancellingOneProblemLeavesTheOthers) {
  SOLVERD_REQUIRE_CUDA();
  TestStream stream;
  ASSERT_TRUE(stream.status().ok());
  std::vector<Problem> problems;
  for (unsigned k = 0; k < 4; ++k) problems.push_back(RandomCost(32, 32, 40, 20 + k));
  CancelToken cancelled;
  cancelled.Cancel();
  std::vector<BatchItem> items(problems.size());
  for (size_t k = 0; k < items.size(); ++k) {
    items[k].problem = &problems[k];
    items[k].options = Sinkhorn(1e-9, 10);
  }
  items[1].cancel = &cancelled;
  ASSERT_TRUE(SolveBatch(Device::Cuda(0), stream.get(), &items).ok());
  EXPECT_EQ(items[1].status.code(), StatusCode::kCancelled);
  EXPECT_EQ(items[1].result.termination, Termination::kStopped);
  EXPECT_EQ(items[1].result.x.size(), 32u);  // what it had reached
  for (size_t k : {0, 2, 3}) {
    EXPECT_TRUE(items[k].status.ok()) << k;
    EXPECT_EQ(items[k].result.termination, Termination::kConverged) << k;
    EXPECT_LE(items[k].result.marginal_error, 1e-9) << k;
  }
}

TEST(OtBatchCuda, MoreProblemsThanOneLaunchHolds) {
  SOLVERD_REQUIRE_CUDA();
  TestStream stream;
  ASSERT_TRUE(stream.status().ok());
  const std::vector<Problem> problems = {RandomCost(2, 3, 5, 1), RandomCost(2, 3, 5, 2)};
  std::vector<BatchItem> items(65535 + 2);
  for (size_t k = 0; k < items.size(); ++k) {
    items[k].problem = &problems[k % 2];
    items[k].options = Sinkhorn(1e-9, 5);
  }
  ASSERT_TRUE(SolveBatch(Device::Cuda(0), stream.get(), &items).ok());
  for (size_t k = 0; k < items.size(); ++k) {
    ASSERT_TRUE(items[k].batched) << k;
    ASSERT_EQ(items[k].result.x, items[k % 2].result.x) << k;
    ASSERT_LE(items[k].result.marginal_error, 1e-9) << k;
  }
}

}  // namespace
}  // namespace solverd::ot
