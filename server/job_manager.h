// JobManager: the core of solverd behind a narrow API that the gRPC layer
// calls: submit, watch, get, list, cancel, blobs, shutdown. It owns the job
// store, blob store, families and scheduler, runs batches on lanes
// (job_runner.cc), turns solver progress into rate-limited job events, and
// keeps the metrics moving. It finds a job's family in its FamilyRegistry
// and never names one. Thread-safe.
#ifndef SOLVERD_SERVER_JOB_MANAGER_H_
#define SOLVERD_SERVER_JOB_MANAGER_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "server/blob_store.h"
#include "server/families/registry.h"
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
  const FamilyRegistry& families() const { return *families_; }

  // New submissions get UNAVAILABLE from now on.
  void StopAccepting() { accepting_ = false; }
  // Gives running jobs `grace` to finish, then stops them and waits.
  // Without --state-dir queued jobs and the stopped ones end CANCELLED;
  // with it they stay queued and running in the journal, so the next start
  // runs them. REQUIRES: StopAccepting() was called.
  void Shutdown(absl::Duration grace);

 private:
  JobManager(const ServerOptions& options, Metrics* metrics,
             std::unique_ptr<JobJournal> journal);
  // Brings back the journal's jobs at startup (job_recovery.cc): finished
  // ones as they ended, the others queued again in submission order.
  absl::Status Recover();
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

  const ServerOptions options_;
  Metrics* const metrics_;
  std::unique_ptr<JobJournal> journal_;  // with --state-dir; outlives store_
  JobStore store_;
  BlobStore blobs_;
  std::unique_ptr<FamilyRegistry> families_;  // set by Create
  std::map<std::string, int64_t> budgets_;  // by device; fixed after Create
  std::unique_ptr<Scheduler> scheduler_;
  std::atomic<bool> accepting_{true};
  absl::Notification stop_janitor_;
  std::thread janitor_;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_JOB_MANAGER_H_
