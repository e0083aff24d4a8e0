// Job: one submitted job's state, event log and result.
//
// The event log is append-only and numbered from 0, so any number of
// watchers can read it at their own pace and resume from any number; a
// solver appending never waits for a watcher. Progress events beyond
// kMaxProgressEvents are dropped (state and result events never are).
// Thread-safe: mu_ guards all mutable state; the PreparedJob is touched only
// by the lane thread that runs the job.
#ifndef SOLVERD_SERVER_JOB_H_
#define SOLVERD_SERVER_JOB_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/cancel_token.h"
#include "server/families/family.h"
#include "server/job_journal.h"
#include "server/scheduling.h"
#include "solverd/v1/jobs.pb.h"

namespace solverd::server {

class Job {
 public:
  static constexpr int64_t kMaxProgressEvents = 10000;

  // A new job: its metadata (priority, deadline, device, labels,
  // idempotency key) is read from `spec` once, into its public view and its
  // scheduling record; the problem data lives in `work`. `owner` is the
  // submitting token's name ("" without tokens). Without `work` (tests)
  // the record lacks the family-given parts.
  Job(std::string id, uint64_t seq, const v1::JobSpec& spec, const Family* family,
      std::unique_ptr<PreparedJob> work, absl::Time now, std::string owner = "");
  // Rebuilds a job from its record (a journal's at restart, the shared
  // store's when this replica claims it), logging what changes from here
  // on to `journal`. A finished job comes back as it ended (`work` may be
  // null); any other is queued again with `work`, with a QUEUED event
  // naming its next attempt if it had started, and its scheduling record
  // rebuilt from the record's public view and `work`.
  Job(const JobRecord& record, const Family* family, std::unique_ptr<PreparedJob> work,
      JobLog* journal, absl::Time now);
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  const std::string& id() const { return id_; }
  uint64_t seq() const { return seq_; }  // submission order
  const Family* family() const { return family_; }
  const std::string& owner() const { return owner_; }
  const std::string& idempotency_key() const { return idempotency_key_; }
  absl::Time create_time() const { return create_time_; }
  // How the scheduler queues it. Set at construction; empty for a job
  // restored finished.
  const SchedulingRecord& scheduling() const { return scheduling_; }
  ::solverd::CancelToken& cancel_token() { return cancel_; }
  // REQUIRES: called by the lane thread running the job, before Finish().
  PreparedJob* work() { return work_.get(); }

  // Records the job, with `problem` (a serialized JobSpec holding only the
  // problem: the rest is in the job's public view), in `journal` and sends
  // every later change there too; returns once the record is durable.
  absl::Status Persist(JobJournal* journal, std::string problem);
  // Sends every later change to `log` (nullptr: to none). REQUIRES: `log`
  // already holds the job as it is now (the shared store, which inserted
  // it), so its events so far count as durable.
  void LogTo(JobLog* log);
  // The log has stored the job's first `events` events (the shared store's
  // writer says so after each commit).
  void MarkDurable(int64_t events);
  // Whether the job has ended and its log holds all of it: then its view
  // here is the one every replica reads from the store, for good.
  bool StoredFinished() const;
  // Whether changes still go to a log or journal.
  bool logging() const;
  // Hands over the problem data (to a Job rebuilt from this one's record).
  // REQUIRES: the job was never queued.
  std::unique_ptr<PreparedJob> TakeWork() { return std::move(work_); }
  // QUEUED -> RUNNING. False when the job is no longer queued (cancelled).
  bool MarkRunning(const std::string& device, absl::Time now);
  void AppendProgress(const v1::Progress& progress, absl::Time now);
  // Moves to a terminal state and frees the problem data; state is
  // SUCCEEDED, FAILED or CANCELLED. The first call wins and returns true;
  // later ones change nothing and return false. *run_seconds (optional)
  // gets the time since MarkRunning(), 0 for a job that never ran.
  bool Finish(v1::JobState state, const absl::Status& error,
              std::optional<v1::JobResult> result, absl::Time now,
              double* run_seconds = nullptr);
  // Asks a queued or running job to stop; returns false if already finished.
  bool RequestCancel();
  // Stops a running job because the server is going down: it ends here,
  // but its journal keeps it running, so the next start re-runs it.
  void Interrupt();

  bool terminal() const;
  v1::JobState state() const;
  absl::Time finish_time() const;  // InfiniteFuture until terminal
  v1::Job Snapshot() const;

  // Appends events numbered >= from_event to *out; when there are none yet
  // and the job is not terminal, waits up to `timeout` for one. Returns true
  // when *out ends with the job's last event (the watcher is done).
  bool ReadEvents(int64_t from_event, absl::Duration timeout,
                  std::vector<v1::JobEvent>* out) const;
  // As ReadEvents, but only the events its log has stored (MarkDurable), so
  // that a watcher here sees what a watcher on any replica would: *done
  // when *out ends with the job's last event. False, and nothing read, when
  // the job no longer logs anywhere (its lease went to another replica):
  // the store then tells the rest.
  bool ReadDurableEvents(int64_t from_event, absl::Duration timeout,
                         std::vector<v1::JobEvent>* out, bool* done) const;

 private:
  // Numbers and keeps `event`; with a journal it waits in unjournaled_
  // for the write that records the change it belongs to.
  void AppendLocked(v1::JobEvent event, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Journals the job's view with the events since the last write, as one
  // write (so one transaction).
  void JournalJobLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string id_;
  const uint64_t seq_;
  const Family* const family_;
  const std::string owner_;
  const std::string idempotency_key_;
  const absl::Time create_time_;
  SchedulingRecord scheduling_;  // fixed after construction
  ::solverd::CancelToken cancel_;
  std::unique_ptr<PreparedJob> work_;  // lane thread only; reset by Finish()

  mutable absl::Mutex mu_;
  v1::Job job_ ABSL_GUARDED_BY(mu_);  // the public view, minus events
  std::vector<v1::JobEvent> events_ ABSL_GUARDED_BY(mu_);
  int64_t progress_events_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time start_time_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  absl::Time finish_time_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  JobLog* journal_ ABSL_GUARDED_BY(mu_) = nullptr;  // none: in memory only
  std::vector<v1::JobEvent> unjournaled_ ABSL_GUARDED_BY(mu_);
  int64_t durable_events_ ABSL_GUARDED_BY(mu_) = 0;  // stored by journal_
  bool interrupted_ ABSL_GUARDED_BY(mu_) = false;
};

bool IsTerminal(v1::JobState state);

// A copy of `spec` with its problem alone: what the journal keeps besides
// the job's public view.
v1::JobSpec ProblemOnly(const v1::JobSpec& spec);

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_JOB_H_
