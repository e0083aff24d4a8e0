// Tests of ParallelFor over its shared worker pool: every index exactly
// once, chunk bounds, nested calls, and many callers at once.
#include "common/parallel_for.h"

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace solverd {
namespace {

TEST(ParallelFor, VisitsEveryIndexOnceInContiguousChunks) {
  for (int threads : {1, 2, 3, 8, 64}) {
    std::vector<std::atomic<int>> visits(1000);
    std::atomic<int> chunks{0};
    ParallelFor(1000, threads, [&](int64_t begin, int64_t end) {
      ASSERT_LT(begin, end);
      ++chunks;
      for (int64_t i = begin; i < end; ++i) ++visits[i];
    }, /*min_items_per_thread=*/1);
    for (int i = 0; i < 1000; ++i) ASSERT_EQ(visits[i], 1) << "threads " << threads;
    const int chunk = (1000 + threads - 1) / threads;
    EXPECT_EQ(chunks, (1000 + chunk - 1) / chunk) << "threads " << threads;
  }
}

TEST(ParallelFor, SmallRangesStayOnTheCaller) {
  const auto caller = std::this_thread::get_id();
  ParallelFor(100, 8, [&](int64_t, int64_t) { EXPECT_EQ(std::this_thread::get_id(), caller); },
              /*min_items_per_thread=*/64);
}

TEST(ParallelFor, NestedAndConcurrentCallsAllFinish) {
  std::atomic<int64_t> total{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      for (int round = 0; round < 50; ++round) {
        ParallelFor(8, 4, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) {
            ParallelFor(100, 3, [&](int64_t b, int64_t e) { total += e - b; },
                        /*min_items_per_thread=*/1);
          }
        }, /*min_items_per_thread=*/1);
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(total, 4 * 50 * 8 * 100);
}

}  // namespace
}  // namespace solverd
