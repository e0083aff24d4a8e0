// JobStore and Job: event numbering, terminal transitions, retention,
// idempotency keys and paging.
#include "server/job_store.h"

#include <gtest/gtest.h>

#include "server/families/ot/family.h"

namespace solverd::server {
namespace {

const Family* OtFamilyForTests() {
  static const OtFamily* const kOt = new OtFamily();
  return kOt;
}

std::shared_ptr<Job> NewJob(JobStore& store, absl::Time now, std::string key = "",
                            std::string owner = "") {
  v1::JobSpec spec;
  spec.set_idempotency_key(key);
  return std::make_shared<Job>(store.NewId(), store.NextSeq(), spec,
                               OtFamilyForTests(), nullptr, now, owner);
}

// JobStore::AddOrGet without a journal: it cannot fail.
std::shared_ptr<Job> Add(JobStore& store, std::shared_ptr<Job> job) {
  return *store.AddOrGet(std::move(job), v1::JobSpec());
}

TEST(Job, EventsAreNumberedAndEndWithTheTerminalState) {
  JobStore store({});
  const absl::Time t0 = absl::Now();
  auto job = NewJob(store, t0);
  ASSERT_TRUE(job->MarkRunning("cpu", t0));
  EXPECT_FALSE(job->MarkRunning("cpu", t0));
  v1::Progress p;
  p.set_iteration(10);
  job->AppendProgress(p, t0);
  v1::JobResult result;
  result.mutable_ot()->set_iterations(10);
  EXPECT_TRUE(job->Finish(v1::JOB_STATE_SUCCEEDED, absl::OkStatus(), result, t0));
  EXPECT_FALSE(job->Finish(v1::JOB_STATE_FAILED, absl::InternalError("late"), std::nullopt, t0));
  std::vector<v1::JobEvent> events;
  EXPECT_TRUE(job->ReadEvents(0, absl::ZeroDuration(), &events));
  ASSERT_EQ(events.size(), 5u);
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].number(), static_cast<int64_t>(i));
  EXPECT_EQ(events[0].state().state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(events[1].state().state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(events[2].progress().iteration(), 10);
  EXPECT_EQ(events[3].result().ot().iterations(), 10);
  EXPECT_EQ(events[4].state().state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(job->Snapshot().state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_FALSE(job->RequestCancel());
  events.clear();
  EXPECT_TRUE(job->ReadEvents(3, absl::ZeroDuration(), &events));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].number(), 3);
}

TEST(Job, ReadEventsWaitsOnlyUntilTimeout) {
  JobStore store({});
  auto job = NewJob(store, absl::Now());
  std::vector<v1::JobEvent> events;
  const absl::Time start = absl::Now();
  EXPECT_FALSE(job->ReadEvents(1, absl::Milliseconds(50), &events));
  EXPECT_TRUE(events.empty());
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(40));
}

TEST(JobStore, RetentionDropsExpiredAndOldestFinished) {
  JobStore store({absl::Hours(1), /*max_jobs_retained=*/2});
  const absl::Time t0 = absl::Now();
  std::vector<std::shared_ptr<Job>> jobs;
  for (int i = 0; i < 4; ++i) jobs.push_back(Add(store, NewJob(store, t0)));
  for (int i = 0; i < 3; ++i) {
    jobs[i]->Finish(v1::JOB_STATE_SUCCEEDED, absl::OkStatus(), std::nullopt, t0);
  }
  EXPECT_EQ(store.Sweep(t0), 1);  // 3 finished, cap 2: the oldest goes
  EXPECT_EQ(store.Find(jobs[0]->id()), nullptr);
  EXPECT_NE(store.Find(jobs[1]->id()), nullptr);
  EXPECT_EQ(store.Sweep(t0 + absl::Hours(2)), 2);  // past the TTL
  EXPECT_EQ(store.size(), 1u);  // the unfinished job is never dropped
  EXPECT_NE(store.Find(jobs[3]->id()), nullptr);
}

TEST(JobStore, IdempotencyKeyReturnsTheFirstJob) {
  JobStore store({});
  auto first = Add(store, NewJob(store, absl::Now(), "k"));
  auto second = Add(store, NewJob(store, absl::Now(), "k"));
  EXPECT_EQ(first, second);
  EXPECT_EQ(store.FindByIdempotencyKey("", "k"), first);
  EXPECT_EQ(store.size(), 1u);
}

TEST(JobStore, IdempotencyKeysAndListingAreKeptPerOwner) {
  JobStore store({});
  auto alice = Add(store, NewJob(store, absl::Now(), "k", "alice"));
  auto bob = Add(store, NewJob(store, absl::Now(), "k", "bob"));
  EXPECT_NE(alice, bob);  // the same key from another token is another job
  EXPECT_EQ(store.FindByIdempotencyKey("bob", "k"), bob);
  EXPECT_EQ(store.FindByIdempotencyKey("", "k"), nullptr);
  JobStore::Filter filter;
  const std::string owner = "alice";
  filter.owner = &owner;
  bool more = false;
  auto listed = store.List(filter, &more);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0], alice);
  EXPECT_EQ(alice->Snapshot().owner(), "alice");
  store.Remove(alice->id());
  EXPECT_EQ(store.FindByIdempotencyKey("alice", "k"), nullptr);
  EXPECT_EQ(store.FindByIdempotencyKey("bob", "k"), bob);
}

TEST(JobStore, ListFiltersAndPages) {  // (JobManager::List also drops results)
  JobStore store({});
  const absl::Time t0 = absl::Now();
  std::vector<std::shared_ptr<Job>> jobs;
  for (int i = 0; i < 5; ++i) jobs.push_back(Add(store, NewJob(store, t0)));
  jobs[1]->Finish(v1::JOB_STATE_CANCELLED, absl::CancelledError("x"), std::nullopt, t0);
  JobStore::Filter f;
  f.limit = 2;
  bool more = false;
  auto page1 = store.List(f, &more);
  ASSERT_EQ(page1.size(), 2u);
  EXPECT_TRUE(more);
  f.after_seq = page1.back()->seq();
  auto page2 = store.List(f, &more);
  ASSERT_EQ(page2.size(), 2u);
  EXPECT_EQ(page2[0], jobs[2]);
  f.after_seq = 0;
  f.limit = 100;
  f.state = v1::JOB_STATE_CANCELLED;
  auto cancelled = store.List(f, &more);
  ASSERT_EQ(cancelled.size(), 1u);
  EXPECT_EQ(cancelled[0], jobs[1]);
  EXPECT_FALSE(more);
}

}  // namespace
}  // namespace solverd::server
