// Scheduler: ordering, bounds, deadlines, removal, batching and admission,
// driven through fake run callbacks (no solvers involved).
#include "server/scheduler.h"

#include <atomic>
#include <vector>

#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace solverd::server {
namespace {

// Records what ran, in order; items named "gate" block until Open().
class Recorder {
 public:
  Scheduler::RunBatchFn RunFn() {
    return [this](const Lane&, std::vector<WorkItem> batch) {
      if (batch.front().job_id == "gate") gate_.WaitForNotification();
      const int now = ++concurrent_;
      int seen = max_concurrent_.load();
      while (now > seen && !max_concurrent_.compare_exchange_weak(seen, now)) {}
      absl::SleepFor(absl::Milliseconds(5));
      --concurrent_;
      absl::MutexLock lock(&mu_);
      std::vector<std::string> ids;
      for (const auto& item : batch) ids.push_back(item.job_id);
      batches_.push_back(ids);
    };
  }
  Scheduler::ExpireFn ExpireFn() {
    return [this](const WorkItem& item) {
      absl::MutexLock lock(&mu_);
      expired_.push_back(item.job_id);
    };
  }
  void Open() { gate_.Notify(); }
  std::vector<std::vector<std::string>> batches() {
    absl::MutexLock lock(&mu_);
    return batches_;
  }
  std::vector<std::string> ran() {
    std::vector<std::string> out;
    for (const auto& b : batches()) out.insert(out.end(), b.begin(), b.end());
    return out;
  }
  std::vector<std::string> expired() {
    absl::MutexLock lock(&mu_);
    return expired_;
  }
  int max_concurrent() const { return max_concurrent_; }

 private:
  absl::Notification gate_;
  std::atomic<int> concurrent_{0}, max_concurrent_{0};
  absl::Mutex mu_;
  std::vector<std::vector<std::string>> batches_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> expired_ ABSL_GUARDED_BY(mu_);
};

std::vector<Lane> CpuLanes(int count) {
  std::vector<Lane> lanes(count);
  for (int i = 0; i < count; ++i) lanes[i].index = i;
  return lanes;
}

Scheduler::Options Opts(int max_queue = 100, int max_batch = 1) {
  Scheduler::Options o;
  o.max_queue = max_queue;
  o.max_batch = max_batch;
  o.memory_budget_bytes["cpu"] = 1000;
  return o;
}

WorkItem Item(std::string id, int priority = 0, std::string key = "", int64_t bytes = 0) {
  WorkItem w;
  w.job_id = std::move(id);
  w.priority = priority;
  w.batch_key = std::move(key);
  w.memory_bytes = bytes;
  return w;
}

bool WaitFor(const std::function<bool()>& done) {
  for (int i = 0; i < 500 && !done(); ++i) absl::SleepFor(absl::Milliseconds(10));
  return done();
}

TEST(Scheduler, HigherPriorityFirstFifoWithin) {
  Recorder r;
  auto s = *Scheduler::Create(Opts(), CpuLanes(1), r.RunFn(), r.ExpireFn());
  ASSERT_TRUE(s->Enqueue(Item("gate", 100)).ok());
  ASSERT_TRUE(WaitFor([&] { return s->running_items() == 1; }));
  for (auto [id, prio] : std::vector<std::pair<std::string, int>>{
           {"a0", 0}, {"b5", 5}, {"c5", 5}, {"d0", 0}, {"e9", 9}, {"f-1", -1}}) {
    ASSERT_TRUE(s->Enqueue(Item(id, prio)).ok());
  }
  EXPECT_EQ(s->queue_depth(), 6);
  r.Open();
  ASSERT_TRUE(WaitFor([&] { return r.ran().size() == 7; }));
  EXPECT_EQ(r.ran(), (std::vector<std::string>{"gate", "e9", "b5", "c5", "a0", "d0", "f-1"}));
}

TEST(Scheduler, QueueBoundGivesResourceExhausted) {
  Recorder r;
  auto s = *Scheduler::Create(Opts(/*max_queue=*/2), CpuLanes(1), r.RunFn(), r.ExpireFn());
  ASSERT_TRUE(s->Enqueue(Item("gate")).ok());
  ASSERT_TRUE(WaitFor([&] { return s->running_items() == 1; }));
  EXPECT_TRUE(s->Enqueue(Item("a")).ok());
  EXPECT_TRUE(s->Enqueue(Item("b")).ok());
  absl::Status full = s->Enqueue(Item("c"));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("max-queue"), absl::string_view::npos) << full.message();
  r.Open();
}

TEST(Scheduler, QueuedItemPastDeadlineExpiresWithoutRunning) {
  Recorder r;
  auto s = *Scheduler::Create(Opts(), CpuLanes(1), r.RunFn(), r.ExpireFn());
  ASSERT_TRUE(s->Enqueue(Item("gate")).ok());
  ASSERT_TRUE(WaitFor([&] { return s->running_items() == 1; }));
  WorkItem late = Item("late");
  late.deadline = absl::Now() + absl::Milliseconds(50);
  ASSERT_TRUE(s->Enqueue(late).ok());
  ASSERT_TRUE(s->Enqueue(Item("ok")).ok());
  ASSERT_TRUE(WaitFor([&] { return r.expired().size() == 1; }));
  EXPECT_EQ(r.expired().front(), "late");
  r.Open();
  ASSERT_TRUE(WaitFor([&] { return r.ran().size() == 2; }));
  EXPECT_EQ(r.ran(), (std::vector<std::string>{"gate", "ok"}));
}

TEST(Scheduler, RemovedItemNeverRuns) {
  Recorder r;
  auto s = *Scheduler::Create(Opts(), CpuLanes(1), r.RunFn(), r.ExpireFn());
  ASSERT_TRUE(s->Enqueue(Item("gate")).ok());
  ASSERT_TRUE(WaitFor([&] { return s->running_items() == 1; }));
  ASSERT_TRUE(s->Enqueue(Item("a")).ok());
  ASSERT_TRUE(s->Enqueue(Item("b")).ok());
  EXPECT_TRUE(s->Remove("a"));
  EXPECT_FALSE(s->Remove("a"));
  EXPECT_FALSE(s->Remove("gate"));  // running, not queued
  r.Open();
  ASSERT_TRUE(WaitFor([&] { return r.ran().size() == 2; }));
  EXPECT_EQ(r.ran(), (std::vector<std::string>{"gate", "b"}));
}

TEST(Scheduler, BatchesItemsWithTheSameKey) {
  Recorder r;
  Scheduler::Options o = Opts(100, /*max_batch=*/3);
  o.max_queue_delay = absl::Milliseconds(100);
  std::vector<Lane> lanes = CpuLanes(1);
  lanes[0].cpu_threads = 3;  // room for three members side by side
  auto s = *Scheduler::Create(o, std::move(lanes), r.RunFn(), r.ExpireFn());
  ASSERT_TRUE(s->Enqueue(Item("gate")).ok());
  ASSERT_TRUE(WaitFor([&] { return s->running_items() == 1; }));
  for (auto [id, key] : std::vector<std::pair<std::string, std::string>>{
           {"k1", "k"}, {"k2", "k"}, {"x", ""}, {"k3", "k"}, {"j1", "j"}, {"k4", "k"}}) {
    ASSERT_TRUE(s->Enqueue(Item(id, 0, key)).ok());
  }
  r.Open();
  ASSERT_TRUE(WaitFor([&] { return r.ran().size() == 7; }));
  // k4 and j1 run alone once their batch has waited max_queue_delay.
  EXPECT_EQ(r.batches(), (std::vector<std::vector<std::string>>{
                             {"gate"}, {"k1", "k2", "k3"}, {"x"}, {"j1"}, {"k4"}}));
}

TEST(Scheduler, CpuLaneBatchesNoMoreThanItsThreads) {
  Recorder r;
  std::vector<Lane> lanes = CpuLanes(1);
  lanes[0].cpu_threads = 2;
  auto s = *Scheduler::Create(Opts(100, /*max_batch=*/8), std::move(lanes), r.RunFn(),
                              r.ExpireFn());
  ASSERT_TRUE(s->Enqueue(Item("gate")).ok());
  ASSERT_TRUE(WaitFor([&] { return s->running_items() == 1; }));
  for (const char* id : {"k1", "k2", "k3", "k4", "k5"}) {
    ASSERT_TRUE(s->Enqueue(Item(id, 0, "k")).ok());
  }
  r.Open();
  ASSERT_TRUE(WaitFor([&] { return r.ran().size() == 6; }));
  EXPECT_EQ(r.batches(), (std::vector<std::vector<std::string>>{
                             {"gate"}, {"k1", "k2"}, {"k3", "k4"}, {"k5"}}));
}

TEST(Scheduler, MemoryAdmission) {
  Recorder r;
  auto s = *Scheduler::Create(Opts(), CpuLanes(2), r.RunFn(), r.ExpireFn());
  absl::Status too_big = s->Enqueue(Item("huge", 0, "", 1001));
  EXPECT_EQ(too_big.code(), absl::StatusCode::kResourceExhausted);
  // Two lanes, but two 600-byte items never fit the 1000-byte budget at once.
  ASSERT_TRUE(s->Enqueue(Item("m1", 0, "", 600)).ok());
  ASSERT_TRUE(s->Enqueue(Item("m2", 0, "", 600)).ok());
  ASSERT_TRUE(s->Enqueue(Item("m3", 0, "", 300)).ok());
  ASSERT_TRUE(WaitFor([&] { return r.ran().size() == 3; }));
  EXPECT_EQ(r.ran()[0], "m1");
  EXPECT_EQ(s->memory_in_use("cpu"), 0);
}

TEST(Scheduler, RejectsDeviceItCannotServeAndStops) {
  Recorder r;
  auto s = *Scheduler::Create(Opts(), CpuLanes(1), r.RunFn(), r.ExpireFn());
  WorkItem cuda = Item("cuda");
  cuda.device = DeviceClass::kCuda;
  EXPECT_EQ(s->Enqueue(cuda).code(), absl::StatusCode::kFailedPrecondition);
  s->Stop();
  EXPECT_EQ(s->Enqueue(Item("late")).code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace solverd::server
