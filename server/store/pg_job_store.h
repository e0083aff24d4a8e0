// PgJobStore: the jobs of every replica in one PostgreSQL database (the
// shared store of --store=postgres://...). Any replica inserts, reads,
// lists and watches any job here; a replica runs a job only while it holds
// the job's lease (jobs.lease_owner / lease_expiry), which it takes with
// Claim (FOR UPDATE SKIP LOCKED, so two replicas never take one job) or at
// Insert, and renews with Heartbeat. A job whose lease expired (its replica
// died) is claimable again, and the claimer runs it as a restart would:
// attempt + 1 and a QUEUED event. The jobs this replica runs write their
// changes through log() (PgJobLog), conditioned on the lease.
//
// A listener thread LISTENs on solverd_events (watchers wake at the commit
// of their job's events), solverd_queue (a job was queued for any replica:
// options.on_queued) and solverd_cancel (options.on_cancel with the job id).
// Watchers fall back to polling (kPollInterval) while it is down.
// Thread-safe; statements go through a small pool of connections.
#ifndef SOLVERD_SERVER_STORE_PG_JOB_STORE_H_
#define SOLVERD_SERVER_STORE_PG_JOB_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/job_log.h"
#include "server/job_store.h"
#include "server/scheduling.h"
#include "server/store/pg_connection.h"
#include "server/store/pg_job_log.h"

namespace solverd::server {

class PgJobStore {
 public:
  static constexpr absl::Duration kPollInterval = absl::Milliseconds(250);

  struct Options {
    PgConnection::Options connection;
    std::string replica;                      // this replica's name in leases
    absl::Duration lease = absl::Seconds(15);  // --lease_seconds
    int query_connections = 4;
    std::function<void()> on_queued = [] {};
    std::function<void(const std::string& job_id)> on_cancel = [](const std::string&) {};
    // Each operation's latency (insert, get, list, events, claim, heartbeat,
    // write_batch), from the thread that ran it.
    PgJobLog::Observer observe = [](const char*, double) {};
    // After each commit of this replica's job writes (PgJobLog).
    PgJobLog::DurableCallback on_durable = [](const std::string&, int64_t) {};
  };

  // Connects, migrates the schema (pg_schema.h) and starts the listener.
  static absl::StatusOr<std::unique_ptr<PgJobStore>> Open(Options options);
  ~PgJobStore();
  PgJobStore(const PgJobStore&) = delete;
  PgJobStore& operator=(const PgJobStore&) = delete;

  const std::string& replica() const { return options_.replica; }
  const std::string& name() const { return queries_.front()->name(); }
  PgJobLog& log() { return *log_; }

  // A job at submission: its view and first events as Job made them.
  struct NewJob {
    v1::Job view;
    std::vector<v1::JobEvent> events;
    std::string problem;  // serialized ProblemOnly(spec)
    SchedulingRecord scheduling;
    bool lease_here = false;  // this replica runs it (else any may claim it)
    int max_queue = 10000;    // queued jobs in the cluster at most
  };
  // Adds `job`, or finds the job of the same owner under its non-empty
  // idempotency key (*added false). *seq gets the job's submission order.
  // RESOURCE_EXHAUSTED when the cluster's queue is full.
  absl::StatusOr<v1::Job> Insert(const NewJob& job, uint64_t* seq, bool* added);

  // The job's public view with its result and event count; NOT_FOUND.
  absl::StatusOr<v1::Job> Get(const std::string& id);
  // Jobs matching `filter`, by submission order, without results; *seqs
  // gets each one's order (the paging cursor), *more whether more follow.
  absl::StatusOr<std::vector<v1::Job>> List(const JobStore::Filter& filter,
                                            std::vector<uint64_t>* seqs, bool* more);
  // Queued jobs in the cluster (of `owner` only, when set).
  absl::StatusOr<int64_t> CountQueued(const std::string* owner);

  // Appends the job's events numbered >= from_event (a page at most) to
  // *out; *done when the job is terminal and *out reaches its last event.
  // NOT_FOUND when the job is gone.
  absl::Status ReadEvents(const std::string& id, int64_t from_event,
                          std::vector<v1::JobEvent>* out, bool* done);

  // Wakes its owner when events of one job are committed. Register before
  // reading, so no commit between a read and the wait is missed.
  class EventWaiter {
   public:
    ~EventWaiter();
    // Returns when events of the job may have been committed since the
    // last call, or after `timeout`.
    void Wait(absl::Duration timeout);

   private:
    friend class PgJobStore;
    EventWaiter(PgJobStore* store, std::string id, uint64_t seen)
        : store_(store), id_(std::move(id)), seen_(seen) {}
    PgJobStore* const store_;
    const std::string id_;
    uint64_t seen_;
  };
  std::unique_ptr<EventWaiter> WatchEvents(const std::string& id);

  // A job this replica has just taken: its record as the store had it, and
  // whether a cancel was asked for while nobody held it.
  struct Claimed {
    JobRecord record;
    bool cancel_requested = false;
  };
  // Leases up to `limit` jobs that nobody holds (queued, or queued and
  // running under an expired lease), best first (priority, then
  // submission); only those in `ids` when it is not empty.
  absl::StatusOr<std::vector<Claimed>> Claim(int limit, const std::vector<std::string>& ids = {});
  // Queued jobs nobody holds whose deadline has passed (at most `limit`).
  absl::StatusOr<std::vector<std::string>> ExpiredQueued(int limit);
  // What a heartbeat found: the jobs whose leases it renewed (any other job
  // this replica runs has lost its lease, e.g. through a store outage
  // longer than the lease) and those of them a cancel was asked for.
  struct Leases {
    absl::flat_hash_set<std::string> held;
    std::vector<std::string> cancel_requested;
  };
  // Renews the leases of this replica's jobs.
  absl::StatusOr<Leases> Heartbeat();
  // Marks a queued or running job to be cancelled and tells the replica
  // holding it. Returns that replica's name, or "" when none holds a live
  // lease (the caller may then claim the job and end it); NOT_FOUND;
  // FAILED_PRECONDITION when the job is already terminal.
  absl::StatusOr<std::string> RequestCancel(const std::string& id);
  // Gives up every lease this replica holds (a graceful stop), so other
  // replicas take its jobs at once.
  absl::Status ReleaseLeases();
  // Deletes jobs finished more than `ttl` ago; returns how many.
  absl::StatusOr<int64_t> Sweep(absl::Duration ttl);
  // Reconnects of all its connections so far.
  int64_t reconnects() const;

 private:
  explicit PgJobStore(Options options) : options_(std::move(options)) {}
  PgConnection& Query();  // the next pool connection
  // Reports the time from its making to its end as `operation`.
  class Timer {
   public:
    Timer(const PgJobStore* store, const char* operation)
        : store_(store), operation_(operation), start_(absl::Now()) {}
    ~Timer() { store_->options_.observe(operation_, absl::ToDoubleSeconds(absl::Now() - start_)); }

   private:
    const PgJobStore* const store_;
    const char* const operation_;
    const absl::Time start_;
  };
  // A submit waiting to be inserted with others (pg_job_insert.cc).
  struct PendingInsert {
    const NewJob* job;
    bool done = false;  // under insert_mu_
    absl::Status status;
    bool added = false;
    uint64_t seq = 0;
  };
  // Puts the group's keyed submits in (owner, key) order in their slots.
  static void OrderKeyedRows(std::vector<PendingInsert*>* group);
  // Inserts `group` in one statement and fills in each one's outcome.
  void InsertGroup(const std::vector<PendingInsert*>& group);
  void ListenLoop();
  void WakeWatchers(const std::string& id);  // "" wakes all

  const Options options_;
  std::vector<std::unique_ptr<PgConnection>> queries_;
  std::atomic<uint64_t> next_query_{0};
  // The cluster's queue at the last CountQueued (the janitor's, each
  // turn) plus what this replica has inserted since: far enough below
  // --max-queue, inserts skip counting it again (pg_job_insert.cc).
  struct QueueCount {
    int64_t queued = -1;  // unknown
    absl::Time when = absl::InfinitePast();
    int64_t inserted_since = 0;
  };
  // Whether `rows` more fit under `max_queue` with room to spare, by the
  // last count; counts them in if so.
  bool FarBelowQueueLimit(int64_t rows, int64_t max_queue);
  absl::Mutex count_mu_;
  QueueCount queue_count_ ABSL_GUARDED_BY(count_mu_);
  absl::Mutex insert_mu_;
  absl::CondVar insert_cv_;
  std::vector<PendingInsert*> pending_inserts_ ABSL_GUARDED_BY(insert_mu_);
  int inserts_in_flight_ ABSL_GUARDED_BY(insert_mu_) = 0;
  std::unique_ptr<PgJobLog> log_;
  std::unique_ptr<PgConnection> listener_;
  std::thread listen_thread_;
  std::atomic<bool> stop_{false};

  struct WaitSlot {
    int watchers = 0;
    uint64_t generation = 0;
  };
  absl::Mutex waiters_mu_;
  absl::CondVar waiters_cv_;
  std::map<std::string, WaitSlot> waiters_ ABSL_GUARDED_BY(waiters_mu_);
  uint64_t all_generation_ ABSL_GUARDED_BY(waiters_mu_) = 0;  // bumped by "wake all"
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_STORE_PG_JOB_STORE_H_
