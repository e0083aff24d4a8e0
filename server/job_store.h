// JobStore: every job the server knows, by id, in submission order, with
// bounded retention: finished jobs are dropped after `result_ttl`, and the
// oldest finished ones beyond `max_jobs_retained`. Queued and running jobs
// are never dropped. With a journal, jobs are recorded there as they are
// added and forgotten there as they are dropped. Thread-safe (mu_ guards
// the indexes; jobs lock themselves).
#ifndef SOLVERD_SERVER_JOB_STORE_H_
#define SOLVERD_SERVER_JOB_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/job.h"
#include "server/job_journal.h"

namespace solverd::server {

class JobStore {
 public:
  struct Options {
    absl::Duration result_ttl = absl::Hours(24);
    int max_jobs_retained = 100000;  // finished jobs
    JobJournal* journal = nullptr;   // none: in memory only
  };

  struct Filter {
    v1::JobState state = v1::JOB_STATE_UNSPECIFIED;  // any
    std::string family;                               // any when empty
    const std::string* owner = nullptr;               // any when null
    uint64_t after_seq = 0;                           // paging cursor
    int limit = 100;
  };

  explicit JobStore(Options options) : options_(options) {}
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  // A fresh, unguessable job id.
  std::string NewId();
  uint64_t NextSeq();

  // Adds `job` unless a job of the same owner with the same non-empty
  // idempotency key exists; returns the job now in the store under it.
  // With a journal, a new job is recorded there with `problem` (a JobSpec
  // holding the problem alone, see ProblemOnly()) before this returns; if
  // that fails it is not added.
  absl::StatusOr<std::shared_ptr<Job>> AddOrGet(std::shared_ptr<Job> job,
                                                const v1::JobSpec& problem);
  // Adds a job rebuilt from the journal at startup.
  void Restore(std::shared_ptr<Job> job);
  // Forgets a job that never got queued (its submission failed).
  void Remove(const std::string& id);
  std::shared_ptr<Job> Find(const std::string& id) const;
  // Keys are per owner: one token cannot reach another's job by its key.
  std::shared_ptr<Job> FindByIdempotencyKey(const std::string& owner,
                                            const std::string& key) const;
  // Jobs matching `filter`, oldest first; *more says whether more follow.
  std::vector<std::shared_ptr<Job>> List(const Filter& filter, bool* more) const;

  // Applies the retention rules at `now`; returns how many jobs were dropped.
  int Sweep(absl::Time now);
  size_t size() const;
  // The ids of every job held here.
  std::vector<std::string> Ids() const;

 private:
  // Drops `job` from the indexes; returns whether it was there.
  bool EraseLocked(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<std::string, std::shared_ptr<Job>> by_id_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, std::shared_ptr<Job>> by_seq_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::string> by_key_ ABSL_GUARDED_BY(mu_);  // key -> id
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_JOB_STORE_H_
