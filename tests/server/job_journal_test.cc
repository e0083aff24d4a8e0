// JobJournal with JobStore and Job: what a restart reads back is what was
// acknowledged, large payloads go to files and leave with their job,
// interrupted jobs stay running on disk, and group commit serves many
// submitters at once.
#include "server/job_journal.h"

#include <gtest/gtest.h>
#include "absl/strings/str_cat.h"
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "server/families/ot/family.h"
#include "server/job_manager.h"
#include "server/job_store.h"
#include "server/metrics.h"

namespace solverd::server {
namespace {

const Family* OtFamilyForTests() {
  static const OtFamily* const kOt = new OtFamily();
  return kOt;
}

namespace fs = std::filesystem;

class JobJournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/job_journal_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<JobJournal> Open() {
    auto journal = JobJournal::Open(dir_);
    EXPECT_TRUE(journal.ok()) << journal.status();
    return journal.ok() ? *std::move(journal) : nullptr;
  }

  // A job as JobManager::Submit makes it (its problem in `work`, here none).
  static std::shared_ptr<Job> NewJob(JobStore& store, const v1::JobSpec& spec) {
    return std::make_shared<Job>(store.NewId(), store.NextSeq(), spec, OtFamilyForTests(),
                                 nullptr, absl::Now());
  }

  static v1::JobSpec SpecWithCost(int64_t n) {
    v1::JobSpec spec;
    spec.set_idempotency_key("key");
    v1::Tensor* cost = spec.mutable_ot()->mutable_cost();
    cost->add_shape(n);
    cost->add_shape(1);
    for (int64_t i = 0; i < n; ++i) cost->add_values(static_cast<double>(i));
    return spec;
  }

  size_t PayloadFiles() const {
    size_t n = 0;
    for (const auto& f : fs::directory_iterator(dir_ + "/payloads")) n += f.is_regular_file();
    return n;
  }

  std::string dir_;
};

TEST_F(JobJournalTest, ARestartReadsBackEveryJobAsItWasLeft) {
  std::string finished_id, running_id;
  {
    auto journal = Open();
    ASSERT_NE(journal, nullptr);
    ASSERT_TRUE(journal->LoadAll()->empty());
    JobStore store({absl::Hours(1), 100, journal.get()});
    v1::JobSpec spec = SpecWithCost(3);
    spec.set_idempotency_key("done");
    auto finished = NewJob(store, spec);
    ASSERT_TRUE(store.AddOrGet(finished, spec).ok());
    finished_id = finished->id();
    ASSERT_TRUE(finished->MarkRunning("cpu", absl::Now()));
    v1::JobResult result;
    result.mutable_ot()->set_transport_cost(1.5);
    finished->Finish(v1::JOB_STATE_SUCCEEDED, absl::OkStatus(), result, absl::Now());
    auto running = NewJob(store, SpecWithCost(2));
    ASSERT_TRUE(store.AddOrGet(running, SpecWithCost(2)).ok());
    running_id = running->id();
    ASSERT_TRUE(running->MarkRunning("cpu", absl::Now()));
    v1::Progress progress;
    progress.set_iteration(7);
    running->AppendProgress(progress, absl::Now());
    ASSERT_TRUE(journal->Flush().ok());
  }  // as if killed: nothing more is written for either job

  auto journal = Open();
  auto records = journal->LoadAll();
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 2u);
  const JobJournal::Record& done = (*records)[0];
  EXPECT_EQ(done.job.id(), finished_id);
  EXPECT_EQ(done.job.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(done.spec.ot().cost().values_size(), 3);  // the problem is kept
  ASSERT_EQ(done.events.size(), 4u);                    // queued, running, result, succeeded
  EXPECT_EQ(done.events[2].result().ot().transport_cost(), 1.5);

  JobStore store({absl::Hours(1), 100, journal.get()});
  auto restored = std::make_shared<Job>(done, OtFamilyForTests(), nullptr,
                                        journal.get(), absl::Now());
  EXPECT_EQ(restored->Snapshot().result().ot().transport_cost(), 1.5);
  EXPECT_TRUE(restored->terminal());

  const JobJournal::Record& was_running = (*records)[1];
  EXPECT_EQ(was_running.job.id(), running_id);
  EXPECT_EQ(was_running.job.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(was_running.job.attempt(), 1);
  ASSERT_EQ(was_running.events.size(), 3u);
  auto requeued = std::make_shared<Job>(was_running, OtFamilyForTests(), nullptr,
                                        journal.get(), absl::Now());
  store.Restore(requeued);
  EXPECT_EQ(requeued->state(), v1::JOB_STATE_QUEUED);
  std::vector<v1::JobEvent> events;
  requeued->ReadEvents(3, absl::ZeroDuration(), &events);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].state().state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(events[0].state().attempt(), 2);
  ASSERT_TRUE(requeued->MarkRunning("cpu", absl::Now()));
  EXPECT_EQ(requeued->Snapshot().attempt(), 2);
  EXPECT_GT(store.NextSeq(), was_running.seq);  // new jobs list after the old
  EXPECT_EQ(store.FindByIdempotencyKey("", "key"), requeued);
}

TEST_F(JobJournalTest, LargePayloadsAreFilesThatLeaveWithTheirJob) {
  auto journal = Open();
  ASSERT_NE(journal, nullptr);
  ASSERT_TRUE(journal->LoadAll().ok());
  JobStore store({absl::ZeroDuration(), 100, journal.get()});
  const v1::JobSpec big = SpecWithCost(200000);  // 1.6 MB of doubles
  auto job = NewJob(store, big);
  ASSERT_TRUE(store.AddOrGet(job, big).ok());
  EXPECT_EQ(PayloadFiles(), 1u);
  v1::JobResult result;
  result.mutable_ot()->mutable_plan()->mutable_values()->Resize(200000, 0.25);
  job->Finish(v1::JOB_STATE_SUCCEEDED, absl::OkStatus(), result, absl::Now());
  ASSERT_TRUE(journal->Flush().ok());
  EXPECT_EQ(PayloadFiles(), 2u);  // the spec and the result event
  {
    auto records = JobJournal::Open(dir_);  // a second reader sees the commits
    ASSERT_TRUE(records.ok());
    auto all = (*records)->LoadAll();
    ASSERT_TRUE(all.ok()) << all.status();
    ASSERT_EQ(all->size(), 1u);
    EXPECT_EQ((*all)[0].spec.ot().cost().values_size(), 200000);
    EXPECT_EQ((*all)[0].events[1].result().ot().plan().values_size(), 200000);
  }
  EXPECT_EQ(store.Sweep(absl::Now() + absl::Seconds(1)), 1);  // TTL 0: expired
  ASSERT_TRUE(journal->Flush().ok());
  EXPECT_EQ(PayloadFiles(), 0u);
  EXPECT_TRUE(journal->LoadAll()->empty());
}

TEST_F(JobJournalTest, AnInterruptedJobStaysRunningOnDisk) {
  auto journal = Open();
  ASSERT_TRUE(journal->LoadAll().ok());
  JobStore store({absl::Hours(1), 100, journal.get()});
  auto job = NewJob(store, SpecWithCost(2));
  ASSERT_TRUE(store.AddOrGet(job, SpecWithCost(2)).ok());
  ASSERT_TRUE(job->MarkRunning("cpu", absl::Now()));
  job->Interrupt();
  EXPECT_TRUE(job->cancel_token().cancelled());
  job->Finish(v1::JOB_STATE_CANCELLED, absl::CancelledError("stopped"), std::nullopt, absl::Now());
  EXPECT_EQ(job->Snapshot().error_code(), static_cast<int>(absl::StatusCode::kUnavailable));
  ASSERT_TRUE(journal->Flush().ok());
  auto records = journal->LoadAll();
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ((*records)[0].job.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ((*records)[0].events.size(), 2u);
}

TEST_F(JobJournalTest, ManySubmittersShareCommits) {
  auto journal = Open();
  ASSERT_TRUE(journal->LoadAll().ok());
  JobStore store({absl::Hours(1), 100000, journal.get()});
  constexpr int kThreads = 8, kJobsEach = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kJobsEach; ++i) {
        v1::JobSpec spec = SpecWithCost(4);
        spec.clear_idempotency_key();
        EXPECT_TRUE(store.AddOrGet(NewJob(store, spec), spec).ok());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  auto records = journal->LoadAll();
  ASSERT_TRUE(records.ok());
  EXPECT_EQ(records->size(), static_cast<size_t>(kThreads * kJobsEach));
  for (size_t i = 1; i < records->size(); ++i) {
    EXPECT_LT((*records)[i - 1].seq, (*records)[i].seq);
  }
}

TEST_F(JobJournalTest, AnUnwritableDirectoryIsAClearError) {
  std::FILE* f = std::fopen((dir_ + "/payloads").c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  auto journal = JobJournal::Open(dir_);  // payloads/ is a file
  ASSERT_FALSE(journal.ok());
  EXPECT_NE(journal.status().message().find("state_dir"), std::string::npos)
      << journal.status();
}

// A state change and the events that record it are one journal write: at
// every point a crash can cut the journal (one write per transaction
// here), the job read back is either not finished and without terminal
// events, or finished with them all, so a restart never re-runs a job that
// had finished.
TEST_F(JobJournalTest, ACrashNeverSplitsAJobsEndFromItsEvents) {
  const v1::JobSpec spec = SpecWithCost(2);
  for (int64_t crash = 0; crash <= 6; ++crash) {
    const std::string dir = absl::StrCat(dir_, "/crash", crash);
    {
      JobJournal::Options options;
      options.max_writes_per_batch = 1;
      options.crash_after_batches = crash;
      auto journal = JobJournal::Open(dir, options);
      ASSERT_TRUE(journal.ok()) << journal.status();
      JobStore store({absl::Hours(1), 100, journal->get()});
      auto job = NewJob(store, spec);
      (void)store.AddOrGet(job, ProblemOnly(spec));  // fails when the crash comes first
      const absl::Time now = absl::Now();
      ASSERT_TRUE(job->MarkRunning("cpu", now));
      job->AppendProgress(v1::Progress(), now);
      v1::JobResult result;
      result.mutable_ot()->set_transport_cost(1);
      ASSERT_TRUE(job->Finish(v1::JOB_STATE_SUCCEEDED, absl::OkStatus(), result, now));
      (void)(*journal)->Flush();
    }
    auto journal = JobJournal::Open(dir);
    ASSERT_TRUE(journal.ok());
    auto records = (*journal)->LoadAll();
    ASSERT_TRUE(records.ok()) << records.status();
    for (const JobJournal::Record& record : *records) {
      bool terminal_event = false, result_event = false;
      for (const v1::JobEvent& e : record.events) {
        terminal_event |= e.has_state() && IsTerminal(e.state().state());
        result_event |= e.has_result();
      }
      EXPECT_EQ(terminal_event, IsTerminal(record.job.state())) << "crash after " << crash;
      EXPECT_EQ(result_event, IsTerminal(record.job.state())) << "crash after " << crash;
      const bool running_event = record.events.size() > 1 && record.events[1].has_state();
      EXPECT_EQ(running_event, record.job.attempt() > 0) << "crash after " << crash;
    }
    if (crash == 6) {
      ASSERT_EQ(records->size(), 1u);
      EXPECT_EQ(records->front().job.state(), v1::JOB_STATE_SUCCEEDED);
    }
  }
}

// Journals written before the scheduling record kept the whole JobSpec
// as the problem and no deadline or device preference in the job's view;
// a restart reads them from the spec there, and the job still runs.
TEST_F(JobJournalTest, ALegacyRecordKeepsItsDeadlineAndDevice) {
  v1::JobSpec spec;
  v1::OtProblem* ot = spec.mutable_ot();
  for (int k = 0; k < 6; ++k) ot->mutable_cost()->add_values(k % 3);
  ot->mutable_cost()->add_shape(2);
  ot->mutable_cost()->add_shape(3);
  ot->set_eta(5);
  spec.set_priority(2);
  spec.set_device(v1::DEVICE_CPU);
  spec.mutable_deadline()->set_seconds(3600);
  v1::Job job;
  job.set_id("job-legacy");
  job.set_family("ot");
  job.set_state(v1::JOB_STATE_QUEUED);
  job.set_priority(2);
  job.mutable_create_time()->set_seconds(absl::ToUnixSeconds(absl::Now()));
  {
    auto journal = Open();
    ASSERT_NE(journal, nullptr);
    ASSERT_TRUE(journal->WaitDurable(journal->AddJob(1, spec.SerializeAsString(), job, {})).ok());
  }
  ServerOptions options;
  options.state_dir = dir_;
  Lane lane;
  lane.device = Device::Cpu();
  Metrics metrics;
  auto manager = JobManager::Create(options, {lane}, &metrics);
  ASSERT_TRUE(manager.ok()) << manager.status();
  auto restored = (*manager)->Get("job-legacy");
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->device_preference(), v1::DEVICE_CPU);
  EXPECT_EQ(restored->deadline_time().seconds() - job.create_time().seconds(), 3600);
  ASSERT_TRUE((*manager)->Watch("job-legacy", 0, [](const v1::JobEvent&) { return true; },
                                [] { return false; }).ok());
  EXPECT_EQ((*manager)->Get("job-legacy")->state(), v1::JOB_STATE_SUCCEEDED);
}

}  // namespace
}  // namespace solverd::server
