// PgJobLog: the changes of the jobs this replica runs, written to the
// shared store (PostgreSQL) by one writer thread. Jobs call PutEvent and
// PutJob under their own locks, so these only queue; the writer applies
// everything queued in one transaction per batch and then NOTIFYs
// `solverd_events` with the job ids touched (space-separated, a few
// notifications per batch), so watchers on every replica wake at the
// commit.
//
// Every write is conditioned on the lease: it lands only while this replica
// holds the job's lease (jobs.lease_owner). A replica that lost a job to
// another (its lease expired while it was cut off) can therefore never
// write a second ending: its late writes are dropped, counted in dropped().
// A terminal view releases the lease in the same transaction as its events.
//
// While the store is unreachable, batches are kept and retried in order
// (every kRetryInterval), so nothing acknowledged is lost to an outage
// shorter than the lease; after a longer one another replica may have
// re-run the job, and this one's writes for it are dropped as above.
// Thread-safe.
#ifndef SOLVERD_SERVER_STORE_PG_JOB_LOG_H_
#define SOLVERD_SERVER_STORE_PG_JOB_LOG_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/job_log.h"
#include "server/store/pg_connection.h"

namespace solverd::server {

class PgJobLog final : public JobLog {
 public:
  static constexpr absl::Duration kRetryInterval = absl::Milliseconds(250);

  // Called with an operation's name and seconds, from the writer thread.
  using Observer = std::function<void(const char* operation, double seconds)>;

  // Called after a commit with a job whose writes landed and the number of
  // its events now stored (all of them up to the last written), from the
  // writer thread.
  using DurableCallback = std::function<void(const std::string& job_id, int64_t events)>;

  // Writes through `connection` (its own: the writer keeps its pace) as
  // replica `replica`; `observe` times each batch. Starts the writer thread.
  PgJobLog(std::unique_ptr<PgConnection> connection, std::string replica,
           Observer observe = [](const char*, double) {},
           DurableCallback on_durable = [](const std::string&, int64_t) {});
  ~PgJobLog() override;  // applies what is queued (while the store answers), then stops
  PgJobLog(const PgJobLog&) = delete;
  PgJobLog& operator=(const PgJobLog&) = delete;

  void PutEvent(const v1::JobEvent& event) override;
  void PutJob(const v1::Job& job, const std::vector<v1::JobEvent>& events) override;

  // Waits up to `timeout` until every write queued so far has been applied
  // (or dropped); UNAVAILABLE naming the store when it has not.
  absl::Status Flush(absl::Duration timeout);
  // Writes waiting for the store (grows during an outage).
  int64_t pending() const;
  // Writes dropped because this replica no longer held the job's lease.
  int64_t dropped() const;
  int64_t reconnects() const { return connection_->reconnects(); }

 private:
  struct Write {
    std::string job_id;
    std::string view;    // serialized v1::Job; empty for a lone event
    int state = 0;       // of the view
    int attempt = 0;     // of the view
    std::vector<std::pair<int64_t, std::string>> events;  // number, serialized
  };
  void Enqueue(Write write);
  void WriterLoop();
  // Applies `batch` in one transaction; *dropped counts writes refused for
  // want of the lease, *stored gets each landed job's stored event count.
  absl::Status Apply(const std::vector<Write>& batch, int64_t* dropped,
                     std::map<std::string, int64_t>* stored);
  // Writes the views and events of `writes`, whose jobs' leases the
  // transaction holds, in three statements or so whatever their number.
  absl::Status ApplyLanding(PgTransaction& tx, const std::vector<const Write*>& writes);

  const std::unique_ptr<PgConnection> connection_;
  const std::string replica_;
  const Observer observe_;
  const DurableCallback on_durable_;
  std::thread writer_;

  mutable absl::Mutex mu_;
  absl::CondVar changed_;
  std::deque<Write> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t enqueued_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t done_ ABSL_GUARDED_BY(mu_) = 0;  // applied or dropped
  int64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_STORE_PG_JOB_LOG_H_
