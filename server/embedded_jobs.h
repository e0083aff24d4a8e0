// EmbeddedJobs: the jobs of one solverd process, in its local JobStore;
// with --state-dir also in the SQLite journal, from which a restart brings
// them back (finished ones as they ended, the others queued again).
// Thread-safe, as the JobStore and journal it uses are.
#ifndef SOLVERD_SERVER_EMBEDDED_JOBS_H_
#define SOLVERD_SERVER_EMBEDDED_JOBS_H_

#include "server/job_backend.h"
#include "server/job_journal.h"

namespace solverd::server {

class JobManager;

class EmbeddedJobs final : public JobBackend {
 public:
  // `journal`: the --state-dir journal, or null for memory only. Both must
  // outlive this.
  EmbeddedJobs(JobManager* manager, JobJournal* journal) : m_(*manager), journal_(journal) {}

  absl::Status Start() override;
  std::optional<v1::Job> FindByIdempotencyKey(const std::string& owner,
                                              const std::string& key) override;
  absl::StatusOr<v1::Job> Submit(const v1::JobSpec& spec, std::shared_ptr<Job> job) override;
  absl::StatusOr<v1::Job> Get(const std::string& job_id) override;
  absl::StatusOr<v1::ListJobsResponse> List(const JobStore::Filter& filter) override;
  absl::StatusOr<bool> QueuedOver(const std::string& owner, int limit) override;
  absl::StatusOr<v1::Job> Cancel(const std::string& job_id) override;
  absl::Status Watch(const std::string& job_id, int64_t from_event,
                     const std::function<bool(const v1::JobEvent&)>& emit,
                     const std::function<bool()>& stop) override;
  void Tend(absl::Time) override {}
  bool reports_queue_depth() const override { return false; }
  bool reachable() const override { return true; }
  void StopTaking() override {}
  bool keeps_unfinished() const override { return journal_ != nullptr; }
  absl::Status Close() override;
  const char* resume_where() const override { return "once the server is back"; }

 private:
  // Brings back the journal's jobs at startup.
  absl::Status Recover();

  JobManager& m_;
  JobJournal* const journal_;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_EMBEDDED_JOBS_H_
