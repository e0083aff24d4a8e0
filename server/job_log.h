// JobLog: where a Job sends its changes so they outlive the process: the
// SQLite journal of --state-dir (JobJournal) or the shared PostgreSQL store
// (PgJobLog). A Job calls it under its own lock, so implementations only
// queue: they never block on I/O here. Each call's changes land in order,
// and a PutJob with its events lands in one transaction, so a job's end is
// never split from the events that record it. Implementations are
// thread-safe.
#ifndef SOLVERD_SERVER_JOB_LOG_H_
#define SOLVERD_SERVER_JOB_LOG_H_

#include <cstdint>
#include <vector>

#include "solverd/v1/jobs.pb.h"

namespace solverd::server {

// A job as a log last saw it: what a restart (SQLite) or another replica
// (PostgreSQL) rebuilds the Job from.
struct JobRecord {
  uint64_t seq = 0;
  // The problem alone; older journals hold the whole spec here, and
  // JobManager::Recover then reads its deadline and device from it.
  v1::JobSpec spec;
  v1::Job job;  // public view, without the result (that is an event)
  std::vector<v1::JobEvent> events;
};

class JobLog {
 public:
  virtual ~JobLog() = default;
  // One event that changes nothing else (progress).
  virtual void PutEvent(const v1::JobEvent& event) = 0;
  // The job's view (its result dropped) and `events`, the events that led
  // to it, as one change.
  virtual void PutJob(const v1::Job& job, const std::vector<v1::JobEvent>& events) = 0;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_JOB_LOG_H_
