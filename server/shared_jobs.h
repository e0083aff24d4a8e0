// SharedJobs: the jobs of every replica, in PostgreSQL (--store=
// postgres://...). Submits, reads, lists, watches and cancels go to the
// shared store, so any replica serves any job. The manager's local
// JobStore and scheduler hold the jobs leased here: a claimer thread takes
// them from the shared queue while the lanes have room, and the janitor
// (Tend) renews their leases, passes on cancels from other replicas and
// reports the cluster's queue depth. Jobs that ended here stay in the
// local JobStore a while once stored, so their submitters read them
// without a query. Thread-safe.
#ifndef SOLVERD_SERVER_SHARED_JOBS_H_
#define SOLVERD_SERVER_SHARED_JOBS_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "server/job_backend.h"
#include "server/store/pg_job_store.h"

namespace solverd::server {

class JobManager;

class SharedJobs final : public JobBackend {
 public:
  // `manager` must outlive this.
  explicit SharedJobs(JobManager* manager) : m_(*manager) {}
  ~SharedJobs() override;

  // Connects (jobs and blobs), migrates the schema and starts claiming.
  absl::Status Start() override;
  std::optional<v1::Job> FindByIdempotencyKey(const std::string&, const std::string&) override {
    return std::nullopt;  // the insert settles keys, across the cluster
  }
  absl::StatusOr<v1::Job> Submit(const v1::JobSpec& spec, std::shared_ptr<Job> job) override;
  absl::StatusOr<v1::Job> Get(const std::string& job_id) override;
  absl::StatusOr<v1::ListJobsResponse> List(const JobStore::Filter& filter) override;
  absl::StatusOr<bool> QueuedOver(const std::string& owner, int limit) override;
  absl::StatusOr<v1::Job> Cancel(const std::string& job_id) override;
  absl::Status Watch(const std::string& job_id, int64_t from_event,
                     const std::function<bool(const v1::JobEvent&)>& emit,
                     const std::function<bool()>& stop) override;
  // Leases, cancels, queue depth, retention, health.
  void Tend(absl::Time now) override;
  bool reports_queue_depth() const override { return true; }
  bool reachable() const override { return up_; }
  void StopTaking() override;
  bool keeps_unfinished() const override { return true; }
  // This replica's jobs go to the others at once rather than when their
  // leases lapse.
  absl::Status Close() override;
  const char* resume_where() const override { return "on another replica"; }

 private:
  // Queues a job this replica has just leased (or ends it: cancelled while
  // nobody held it, or unable to run here).
  void Adopt(PgJobStore::Claimed claimed);
  // How many jobs this replica leases ahead of its lanes.
  int ClaimCapacity() const;
  void ClaimLoop();
  void WakeClaimer();
  // Stops the jobs of `before` (those held here before a heartbeat) whose
  // leases the heartbeat did not renew.
  void DropLostLeases(const std::vector<std::string>& before,
                      const absl::flat_hash_set<std::string>& held);

  JobManager& m_;
  std::atomic<bool> up_{true};     // the store answered the last heartbeat
  std::atomic<bool> ready_{false};  // the listener's callbacks may act
  absl::Mutex claim_mu_;
  absl::CondVar claim_cv_;
  bool claim_wanted_ ABSL_GUARDED_BY(claim_mu_) = false;
  bool stop_claiming_ ABSL_GUARDED_BY(claim_mu_) = false;
  std::thread claimer_;
  absl::Time last_sweep_ = absl::InfinitePast();  // janitor thread only
  int64_t reconnects_seen_ = 0;                   // janitor thread only
  // Last, so that its listener thread, whose callbacks use the above,
  // stops first.
  std::unique_ptr<PgJobStore> shared_;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_SHARED_JOBS_H_
