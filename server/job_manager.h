// JobManager: the core of solverd behind a narrow API that the gRPC layer
// calls: submit, watch, get, list, cancel, blobs, shutdown. It owns the job
// store, blob store, families and scheduler, runs batches on lanes
// (job_runner.cc), turns solver progress into rate-limited job events, and
// keeps the metrics moving. It finds a job's family in its FamilyRegistry
// and never names one, and where the jobs are kept in its JobBackend
// (job_backend.h): this process alone (EmbeddedJobs, memory or the SQLite
// journal of --state-dir) or every replica (SharedJobs, PostgreSQL with
// --store=postgres://...). Thread-safe.
#ifndef SOLVERD_SERVER_JOB_MANAGER_H_
#define SOLVERD_SERVER_JOB_MANAGER_H_

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "server/blob_store.h"
#include "server/families/registry.h"
#include "server/job_backend.h"
#include "server/job_journal.h"
#include "server/job_store.h"
#include "server/metrics.h"
#include "server/options.h"
#include "server/lane.h"
#include "server/scheduler.h"

namespace solverd::server {

class JobManager {
 public:
  // `lanes` are where jobs run (see MakeLanes()); `metrics` must outlive
  // the manager; `families` are those it serves (all registered ones unless
  // a test says otherwise).
  static absl::StatusOr<std::unique_ptr<JobManager>> Create(
      const ServerOptions& options, std::vector<Lane> lanes, Metrics* metrics,
      const std::vector<FamilyRegistration>& families = RegisteredFamilies());
  ~JobManager();

  // `owner`: the submitting token's name ("" without tokens).
  absl::StatusOr<v1::Job> Submit(const v1::JobSpec& spec, const std::string& owner = "");
  absl::StatusOr<v1::Job> Get(const std::string& job_id) const;
  // The token that submitted the job; from memory when it runs here.
  absl::StatusOr<std::string> Owner(const std::string& job_id) const;
  // Only `owner`'s jobs when it is set.
  absl::StatusOr<v1::ListJobsResponse> List(const v1::ListJobsRequest& request,
                                            const std::string* owner = nullptr) const;
  absl::StatusOr<v1::Job> Cancel(const std::string& job_id);

  // Calls `emit` with each event from `from_event` on until the job's last
  // event, waiting for new ones. Stops early (OK) when `emit` returns false
  // or `stop` says so (polled a few times a second).
  absl::Status Watch(const std::string& job_id, int64_t from_event,
                     const std::function<bool(const v1::JobEvent&)>& emit,
                     const std::function<bool()>& stop) const;

  BlobStore& blobs() { return blobs_; }
  // Whether this replica can take work: accepting, and its store answers.
  bool serving() const { return accepting_ && backend_->reachable(); }
  const FamilyRegistry& families() const { return *families_; }

  // New submissions get UNAVAILABLE from now on.
  void StopAccepting() { accepting_ = false; }
  // Gives running jobs `grace` to finish, then stops them and waits.
  // Without --state-dir queued jobs and the stopped ones end CANCELLED;
  // with it they stay queued and running in the journal, so the next start
  // runs them. REQUIRES: StopAccepting() was called.
  void Shutdown(absl::Duration grace);

 private:
  friend class EmbeddedJobs;
  friend class SharedJobs;

  JobManager(const ServerOptions& options, Metrics* metrics,
             std::unique_ptr<JobJournal> journal);
  // Rebuilds a job from `record` (a journal's at a restart, the shared
  // store's at a claim) with its changes going to `log`, and keeps it in
  // the local store. The status says why it cannot run here (it is then
  // neither prepared nor queued).
  std::pair<std::shared_ptr<Job>, absl::Status> Rebuild(const JobRecord& record,
                                                         const Family& family, JobLog* log);
  // Queues `job` on the scheduler by its scheduling record.
  absl::Status Enqueue(const Job& job, absl::Time now);
  // RESOURCE_EXHAUSTED when the job's largest problem is over its family's
  // size limit (FamilyInfo::size_limit, e.g. --max_ot_entries).
  absl::Status CheckProblemSize(const Family& family, const PreparedJob& work) const;
  // RESOURCE_EXHAUSTED when `owner` already has its quota of queued jobs.
  absl::Status CheckQueuedQuota(const std::string& owner) const;
  // Batch running (job_runner.cc): called on a lane's thread.
  void RunBatch(const Lane& lane, std::vector<WorkItem> items);
  void Expire(const WorkItem& item);
  void FinishJob(Job& job, JobOutcome outcome);
  void UpdateGauges();
  void JanitorLoop();

  // What a watch that outlives Shutdown ends with: UNAVAILABLE naming
  // the next event, so the client resumes from it.
  absl::Status WatchMovedAway(const std::string& job_id, int64_t next) const;
  // Cancels a job this replica holds and returns its view; nullopt when it
  // holds none by that id.
  std::optional<v1::Job> CancelLocal(const std::string& job_id);

  const ServerOptions options_;
  Metrics* const metrics_;
  std::unique_ptr<JobJournal> journal_;  // with --state-dir; outlives store_
  JobStore store_;
  BlobStore blobs_;
  std::unique_ptr<FamilyRegistry> families_;  // set by Create
  std::map<std::string, int64_t> budgets_;  // by device; fixed after Create
  std::unique_ptr<Scheduler> scheduler_;
  std::atomic<bool> accepting_{true};
  // Set at the end of Shutdown: open watches end with UNAVAILABLE, naming
  // the next event, so that clients resume them elsewhere.
  std::atomic<bool> watches_closing_{false};
  int lanes_ = 0;
  absl::Notification stop_janitor_;
  std::thread janitor_;
  // Where the jobs are kept. Last, so that the shared store's threads,
  // whose callbacks use the members above, stop first.
  std::unique_ptr<JobBackend> backend_;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_JOB_MANAGER_H_
