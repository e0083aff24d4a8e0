// Tests of ParallelFor over its shared worker pool: every index exactly
// once, chunk bounds, nested calls, and many callers at once; and of
// ParallelForParts' numbered parts.
#include "common/parallel_for.h"

#include <atomic>
#include <chrono>
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

TEST(ParallelForParts, EachPartItsOwnContiguousRangeInOrder) {
  EXPECT_EQ(PartCount(1000, 2), 2);
  EXPECT_EQ(PartCount(100, 8), 1);  // 64 items a part at least
  EXPECT_EQ(PartCount(1000, 64, /*min_items_per_thread=*/1), 64);
  EXPECT_EQ(PartCount(0, 4), 1);
  for (int64_t parts : {1, 2, 3, 7}) {
    std::vector<int64_t> begins(parts, -1), ends(parts, -1);
    std::vector<std::atomic<int>> visits(131);
    ParallelForParts(131, parts, [&](int64_t part, int64_t begin, int64_t end) {
      begins[part] = begin;
      ends[part] = end;
      for (int64_t i = begin; i < end; ++i) ++visits[i];
    });
    for (int i = 0; i < 131; ++i) ASSERT_EQ(visits[i], 1) << "parts " << parts;
    EXPECT_EQ(begins[0], 0);
    EXPECT_EQ(ends[parts - 1], 131);
    for (int64_t part = 1; part < parts; ++part) {
      EXPECT_EQ(begins[part], ends[part - 1]) << "parts " << parts;
      if (part < parts - 1) {
        EXPECT_EQ(ends[part] - begins[part], ends[0] - begins[0]) << "parts " << parts;
      }
    }
  }
}

TEST(ParallelForParts, TwoPartsRunAtOnce) {
  // Two parts of two items each: ParallelFor's default of 64 items a thread
  // would run them one after the other on the caller, and each part here
  // waits for the other to start. The pool has a worker per core besides
  // the caller.
  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "one core";
  std::atomic<int> started{0};
  std::atomic<bool> both{true};
  ParallelForParts(4, 2, [&](int64_t, int64_t, int64_t) {
    ++started;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (started.load() < 2) {
      if (std::chrono::steady_clock::now() > give_up) {
        both = false;
        return;
      }
      std::this_thread::yield();
    }
  });
  EXPECT_TRUE(both);
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
