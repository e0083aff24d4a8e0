// JobManager: the core of solverd behind a narrow API that the gRPC layer
// calls: submit, watch, get, list, cancel, blobs, shutdown. It owns the job
// store, blob store, families and scheduler, runs batches on lanes
// (job_runner.cc), turns solver progress into rate-limited job events, and
// keeps the metrics moving. It finds a job's family in its FamilyRegistry
// and never names one.
//
// With --store=postgres://... (job_manager_shared.cc) the jobs live in the
// shared PgJobStore: submits, reads, watches and cancels go there, so any
// replica serves any job; the local JobStore and Scheduler hold the jobs
// this replica has leased, which a claimer thread takes from the shared
// queue while the lanes have room, and the janitor renews their leases
// every second. Jobs that ended here stay in the local JobStore a while
// once stored, so their submitters read them without a query. Thread-safe.
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
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "server/blob_store.h"
#include "server/families/registry.h"
#include "server/job_journal.h"
#include "server/job_store.h"
#include "server/metrics.h"
#include "server/options.h"
#include "server/lane.h"
#include "server/scheduler.h"
#include "server/store/pg_job_store.h"

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
  bool serving() const { return accepting_ && store_up_; }
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

  // The shared store's side (job_manager_shared.cc).
  absl::Status OpenSharedStore();
  absl::StatusOr<v1::Job> SubmitShared(const v1::JobSpec& spec, std::shared_ptr<Job> job);
  absl::StatusOr<v1::Job> CancelShared(const std::string& job_id);
  absl::Status WatchShared(const std::string& job_id, int64_t from_event,
                           const std::function<bool(const v1::JobEvent&)>& emit,
                           const std::function<bool()>& stop) const;
  absl::StatusOr<v1::ListJobsResponse> ListShared(const JobStore::Filter& filter) const;
  // What a watch that outlives Shutdown ends with: UNAVAILABLE naming
  // the next event, so the client resumes from it.
  absl::Status WatchMovedAway(const std::string& job_id, int64_t next) const;
  // Cancels a job this replica holds and returns its view; nullopt when it
  // holds none by that id.
  std::optional<v1::Job> CancelLocal(const std::string& job_id);
  // Queues a job this replica has just leased (or ends it: cancelled while
  // nobody held it, or unable to run here).
  void Adopt(PgJobStore::Claimed claimed);
  // How many jobs this replica leases ahead of its lanes.
  int ClaimCapacity() const;
  void ClaimLoop();
  void WakeClaimer();
  // The janitor's turn with the shared store: leases, cancels, queue depth,
  // retention, health.
  void TendSharedStore(absl::Time now);
  // Stops the jobs of `before` (those held here before a heartbeat) whose
  // leases the heartbeat did not renew.
  void DropLostLeases(const std::vector<std::string>& before,
                      const absl::flat_hash_set<std::string>& held);

  const ServerOptions options_;
  Metrics* const metrics_;
  std::unique_ptr<JobJournal> journal_;  // with --state-dir; outlives store_
  JobStore store_;
  BlobStore blobs_;
  std::unique_ptr<FamilyRegistry> families_;  // set by Create
  std::map<std::string, int64_t> budgets_;  // by device; fixed after Create
  std::unique_ptr<Scheduler> scheduler_;
  std::atomic<bool> accepting_{true};
  // With --store: what keeps this replica's part of the shared store.
  std::atomic<bool> store_up_{true};
  // Set at the end of Shutdown: open watches end with UNAVAILABLE, naming
  // the next event, so that clients resume them elsewhere.
  std::atomic<bool> watches_closing_{false};
  std::atomic<bool> ready_{false};  // the listener's callbacks may act
  int lanes_ = 0;
  absl::Mutex claim_mu_;
  absl::CondVar claim_cv_;
  bool claim_wanted_ ABSL_GUARDED_BY(claim_mu_) = false;
  bool stop_claiming_ ABSL_GUARDED_BY(claim_mu_) = false;
  std::thread claimer_;
  absl::Time last_sweep_ = absl::InfinitePast();  // janitor thread only
  int64_t reconnects_seen_ = 0;                   // janitor thread only
  absl::Notification stop_janitor_;
  std::thread janitor_;
  // With --store: the shared store. Last, so its listener thread, whose
  // callbacks use the members above, stops first.
  std::unique_ptr<PgJobStore> shared_;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_JOB_MANAGER_H_
