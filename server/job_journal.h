// JobJournal: the durable record of jobs under --state-dir, so a restart
// (or a crash) loses nothing a client was told about.
//
// Metadata lives in SQLite (state_dir/jobs.db, WAL): one row per job with
// its problem (a JobSpec holding the problem alone) and latest public view,
// one row per event. Payloads over kInlineBytes (big inline problems, dense
// plans) go to files under
// state_dir/payloads, written atomically (temp file, fsync, rename) before
// the row naming them commits.
//
// One writer thread applies queued writes in one transaction per batch
// (group commit, fsynced), so many submitters share an fsync. AddJob()
// returns only once the job is durable; event and state writes are queued
// and land within a batch. A state change and the events that record it
// (RUNNING, a result and the terminal state) are one write, so they land in
// one transaction: a crash never leaves a finished job's events without its
// finished row, which would run it again. Thread-safe.
#ifndef SOLVERD_SERVER_JOB_JOURNAL_H_
#define SOLVERD_SERVER_JOB_JOURNAL_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/job_log.h"
#include "solverd/v1/jobs.pb.h"

struct sqlite3;

namespace solverd::server {

class JobJournal final : public JobLog {
 public:
  static constexpr int64_t kInlineBytes = int64_t{1} << 20;

  using Record = JobRecord;

  struct Options {
    // Writes per transaction at most.
    size_t max_writes_per_batch = 512;
    // Tests of crash safety: commit this many batches, then drop every
    // later write as a crash at that point would (their waiters get
    // UNAVAILABLE). Negative: never.
    int64_t crash_after_batches = -1;
  };

  // Opens (creating if needed) the journal in `state_dir`.
  static absl::StatusOr<std::unique_ptr<JobJournal>> Open(const std::string& state_dir,
                                                          const Options& options);
  static absl::StatusOr<std::unique_ptr<JobJournal>> Open(const std::string& state_dir) {
    return Open(state_dir, Options());
  }
  ~JobJournal();  // applies what is queued, then closes
  JobJournal(const JobJournal&) = delete;
  JobJournal& operator=(const JobJournal&) = delete;

  // Every job in the journal, by seq, with the writes committed so far.
  absl::StatusOr<std::vector<Record>> LoadAll();

  // Every write is queued and lands in order, in a batch; its ticket says
  // when (WaitDurable).
  using Ticket = uint64_t;

  // Records a new job, with its serialized problem (ProblemOnly()) and the
  // events it has so far.
  Ticket AddJob(uint64_t seq, std::string spec, const v1::Job& job,
                const std::vector<v1::JobEvent>& events);
  void PutEvent(const v1::JobEvent& event) override;
  // The job's view (result dropped) and `events`, the events that led to
  // it, in one transaction.
  void PutJob(const v1::Job& job, const std::vector<v1::JobEvent>& events) override;
  void DeleteJob(const std::string& id);
  // Waits until the write behind `ticket` (and all before it) is durable;
  // the error that kept it from being (RESOURCE_EXHAUSTED on a full disk).
  absl::Status WaitDurable(Ticket ticket);
  // Waits until every write queued so far is durable; the first error since
  // the last Flush() (a queued write that failed), or OK.
  absl::Status Flush();

 private:
  // One queued change; the payloads are serialized protos.
  struct Write {
    enum Kind { kAdd, kEvent, kJob, kDelete } kind;
    std::string id;
    uint64_t seq = 0;           // kAdd
    std::string spec;           // kAdd
    std::string bytes;          // kEvent: the event; kAdd, kJob: the job
    int64_t number = 0;         // kEvent
    std::vector<Write> events;  // kAdd: its events so far; kJob: those with the change
  };
  static Write EventWrite(const v1::JobEvent& event);
  JobJournal(std::string state_dir, const Options& options)
      : state_dir_(std::move(state_dir)), options_(options) {}
  absl::Status Init();
  // Queues `write`; returns its ticket (the writes before it are done when
  // committed_ reaches it).
  Ticket Enqueue(Write write);
  void WriterLoop();
  absl::Status Apply(const std::vector<Write>& batch);
  absl::Status ApplyOne(const Write& write, std::vector<std::string>* unlink_after);

  const std::string state_dir_;
  const Options options_;
  absl::Mutex db_mu_;  // one user of the connection at a time
  sqlite3* db_ ABSL_PT_GUARDED_BY(db_mu_) = nullptr;
  std::thread writer_;

  absl::Mutex mu_;
  std::deque<Write> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t enqueued_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t committed_ ABSL_GUARDED_BY(mu_) = 0;
  // The latest failed batches: tickets first..last, and why.
  struct Failure {
    uint64_t first, last;
    absl::Status status;
  };
  std::vector<Failure> failures_ ABSL_GUARDED_BY(mu_);
  absl::Status unreported_ ABSL_GUARDED_BY(mu_);
  int64_t batches_ ABSL_GUARDED_BY(mu_) = 0;  // committed so far (crash_after_batches)
  bool stop_ ABSL_GUARDED_BY(mu_) = false;    // asked to stop
  bool closed_ ABSL_GUARDED_BY(mu_) = false;  // the writer has stopped
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_JOB_JOURNAL_H_
