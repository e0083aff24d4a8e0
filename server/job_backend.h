// JobBackend: where a JobManager's jobs live, and so who else sees them.
// The manager validates, prepares, schedules and runs jobs the same way
// with either kind; what differs is behind this interface:
//
//   EmbeddedJobs  one process: the local JobStore, journaled to SQLite
//                 with --state-dir (restarts bring the jobs back).
//   SharedJobs    every replica: the jobs in PostgreSQL (--store=...);
//                 the local JobStore holds those leased here.
//
// Implementations are thread-safe.
#ifndef SOLVERD_SERVER_JOB_BACKEND_H_
#define SOLVERD_SERVER_JOB_BACKEND_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/job.h"
#include "server/job_store.h"
#include "solverd/v1/jobs.pb.h"

namespace solverd::server {

class JobBackend {
 public:
  virtual ~JobBackend() = default;

  // Brings back the jobs it keeps (a journal's) or joins the others (the
  // shared store); called once, when the manager is otherwise ready.
  virtual absl::Status Start() = 0;

  // The job under `owner`'s idempotency `key` when it can be told before
  // the problem is prepared; nullopt otherwise (Submit then settles it).
  virtual std::optional<v1::Job> FindByIdempotencyKey(const std::string& owner,
                                                      const std::string& key) = 0;
  // Keeps `job` (prepared, validated, with the problem of `spec`) and has
  // it run; returns its view as queued, or the job already under its
  // idempotency key.
  virtual absl::StatusOr<v1::Job> Submit(const v1::JobSpec& spec, std::shared_ptr<Job> job) = 0;
  virtual absl::StatusOr<v1::Job> Get(const std::string& job_id) = 0;
  // Without results (GetJob returns them).
  virtual absl::StatusOr<v1::ListJobsResponse> List(const JobStore::Filter& filter) = 0;
  // Whether `owner` has more than `limit` queued jobs.
  virtual absl::StatusOr<bool> QueuedOver(const std::string& owner, int limit) = 0;
  virtual absl::StatusOr<v1::Job> Cancel(const std::string& job_id) = 0;
  // As JobManager::Watch.
  virtual absl::Status Watch(const std::string& job_id, int64_t from_event,
                             const std::function<bool(const v1::JobEvent&)>& emit,
                             const std::function<bool()>& stop) = 0;

  // The janitor's turn (about once a second).
  virtual void Tend(absl::Time now) = 0;
  // Whether the queue depth to report is the backend's (the cluster's)
  // rather than the local scheduler's.
  virtual bool reports_queue_depth() const = 0;
  // Whether the store answers (health and submits follow it).
  virtual bool reachable() const = 0;

  // Shutting down: no more jobs are taken in.
  virtual void StopTaking() = 0;
  // Whether queued and interrupted jobs outlive this process (the next
  // start, or another replica, runs them) rather than being cancelled.
  virtual bool keeps_unfinished() const = 0;
  // Writes out what is pending and hands on what this process held.
  virtual absl::Status Close() = 0;
  // Where a watch cut by shutdown goes on: "once the server is back", ...
  virtual const char* resume_where() const = 0;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_JOB_BACKEND_H_
