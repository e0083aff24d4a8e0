// PgJobStore::Insert: submits that arrive while one is being written go
// in together, as one statement (group commit): on a busy replica a
// statement and its commit serve several submits, and an idle one pays no
// wait, since the first submit goes at once.
#include <algorithm>
#include <map>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/store/pg_job_store.h"
#include "server/store/pg_sql.h"

namespace solverd::server {
namespace {

// Rows per statement; a row takes 13 parameters and two per event.
constexpr size_t kMaxGroup = 64;
// Statements in flight per replica: one being written while the next group
// gathers, and a second to overlap a commit's flush.
constexpr int kGroupsInFlight = 2;

// Counting the queue scans its index, dead entries included until
// vacuum, and costs more as jobs come and go; a submit needs the exact
// count only near the limit. Far below it means: at the last count (at
// most kCountAge old) at least kSpare places, or a fifth of the limit,
// were free beyond this replica's inserts since, so other replicas would
// have to submit that many in between to overshoot.
constexpr absl::Duration kCountAge = absl::Seconds(5);
constexpr int64_t kSpare = 2000;

// A statement that loses a deadlock has written nothing; it goes again
// this many times before its submits fail.
constexpr int kDeadlockRetries = 3;

// The group's rows land in submission order while the cluster's queue has
// room for each (the count is taken once, before the statement), except
// those whose owner already has a job under their idempotency key (the
// statement then waits for that job's transaction and skips the row; see
// OrderKeyedRows for why those waits cannot form a cycle).
// Their first events go in with them, and a job that no replica leases
// wakes the claimers.
constexpr const char* kInsertGroup = R"sql(
WITH input(id, owner, idempotency_key, family, problem, job, priority, deadline, device,
           batch_key, memory_bytes, lease_owner, place) AS (VALUES %s),
job AS (
  INSERT INTO jobs(id, owner, idempotency_key, family, problem, job, state, priority, deadline,
                   device, batch_key, memory_bytes, lease_owner, lease_expiry)
  SELECT id, owner, idempotency_key, family, problem, job, 1, priority, to_timestamp(deadline),
         device, batch_key, memory_bytes, lease_owner,
         CASE WHEN lease_owner IS NULL THEN NULL
         ELSE now() + make_interval(secs => $1::double precision) END
  FROM input WHERE %s
  ORDER BY place
  ON CONFLICT (owner, idempotency_key) WHERE idempotency_key <> '' DO NOTHING
  RETURNING seq, id, lease_owner)%s
SELECT id, seq, CASE WHEN lease_owner IS NULL THEN pg_notify('solverd_queue', '') END FROM job)sql";

}  // namespace

absl::StatusOr<v1::Job> PgJobStore::Insert(const NewJob& job, uint64_t* seq, bool* added) {
  Timer timer(this, "insert");
  PendingInsert me{&job};
  insert_mu_.Lock();
  pending_inserts_.push_back(&me);
  while (!me.done) {
    // Wait while the statements in flight are enough, or while another
    // submit's statement carries this one.
    if (inserts_in_flight_ >= kGroupsInFlight || pending_inserts_.empty()) {
      insert_cv_.Wait(&insert_mu_);
      continue;
    }
    const size_t n = std::min(kMaxGroup, pending_inserts_.size());
    std::vector<PendingInsert*> group(pending_inserts_.begin(), pending_inserts_.begin() + n);
    pending_inserts_.erase(pending_inserts_.begin(), pending_inserts_.begin() + n);
    ++inserts_in_flight_;
    insert_mu_.Unlock();
    OrderKeyedRows(&group);
    InsertGroup(group);
    insert_mu_.Lock();
    --inserts_in_flight_;
    for (PendingInsert* p : group) p->done = true;
    insert_cv_.SignalAll();
  }
  insert_mu_.Unlock();
  if (!me.status.ok()) return me.status;
  *added = me.added;
  if (me.added) {
    *seq = me.seq;
    return job.view;
  }
  if (!job.view.idempotency_key().empty()) {
    auto existing = Query().Exec(
        "SELECT id FROM jobs WHERE owner = $1 AND idempotency_key = $2",
        {job.view.owner(), job.view.idempotency_key()});
    if (!existing.ok()) return existing.status();
    if (!existing->empty()) return Get(existing->Text(0, 0));
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "queue is full: the cluster has ", job.max_queue, " queued jobs (--max_queue)"));
}

// A keyed row that meets another statement's uncommitted row of the same
// key waits for that statement; two statements each holding a key the
// other wants would deadlock (two replicas, or two groups in flight here,
// taking keys "a", "b" in opposite orders). Every statement therefore
// takes its keys in one order, (owner, key): the keyed rows trade places
// among themselves, the unkeyed ones keep theirs, and the submits of one
// group, which arrived together, may be queued in another order.
void PgJobStore::OrderKeyedRows(std::vector<PendingInsert*>* group) {
  std::vector<size_t> slots;
  std::vector<PendingInsert*> keyed;
  for (size_t k = 0; k < group->size(); ++k) {
    if ((*group)[k]->job->view.idempotency_key().empty()) continue;
    slots.push_back(k);
    keyed.push_back((*group)[k]);
  }
  std::stable_sort(keyed.begin(), keyed.end(), [](PendingInsert* a, PendingInsert* b) {
    const v1::Job& x = a->job->view;
    const v1::Job& y = b->job->view;
    return std::tie(x.owner(), x.idempotency_key()) < std::tie(y.owner(), y.idempotency_key());
  });
  for (size_t k = 0; k < slots.size(); ++k) (*group)[slots[k]] = keyed[k];
}

void PgJobStore::InsertGroup(const std::vector<PendingInsert*>& group) {
  int64_t max_queue = group.front()->job->max_queue;
  std::vector<PgParam> params = {PgSeconds(options_.lease), int64_t{0}};
  std::string rows, events;
  for (size_t k = 0; k < group.size(); ++k) {
    const NewJob& job = *group[k]->job;
    const SchedulingRecord& s = job.scheduling;
    max_queue = std::min<int64_t>(max_queue, job.max_queue);
    const bool forever = s.deadline == absl::InfiniteFuture();
    AppendPgRow(&rows, &params, {
        {job.view.id(), "text"}, {job.view.owner(), "text"},
        {job.view.idempotency_key(), "text"}, {job.view.family(), "text"},
        {PgParam::Bytes(job.problem), "bytea"},
        {PgParam::Bytes(job.view.SerializeAsString()), "bytea"},
        {int64_t{s.priority}, "integer"},
        {forever ? PgParam() : PgParam(absl::StrCat(absl::ToUnixMicros(s.deadline) * 1e-6)),
         "double precision"},
        {int64_t{static_cast<int>(s.device)}, "smallint"}, {s.batch_key, "text"},
        {s.memory_bytes, "bigint"},
        {job.lease_here ? PgParam(options_.replica) : PgParam(), "text"},
        {static_cast<int64_t>(k + 1), "integer"}});
    for (const v1::JobEvent& e : job.events) {
      AppendPgRow(&events, &params, {{job.view.id(), "text"}, {e.number(), "bigint"},
                                     {PgParam::Bytes(e.SerializeAsString()), "bytea"}});
    }
  }
  params[1] = PgParam(max_queue);
  const std::string first_events = events.empty() ? "" : absl::StrCat(
      ", first_events AS (INSERT INTO events(job_id, number, event) SELECT job.id, e.number, "
      "e.event FROM job JOIN (VALUES ", events, ") AS e(id, number, event) ON e.id = job.id)");
  const char* room = FarBelowQueueLimit(static_cast<int64_t>(group.size()), max_queue)
                         ? "$2::bigint > 0"
                         : "(SELECT count(*) FROM jobs WHERE state = 1) + place <= $2::bigint";
  const std::string statement = absl::StrFormat(kInsertGroup, rows, room, first_events);
  auto inserted = Query().Exec(statement, params);
  // Keys in one order rule out deadlocks between inserts; this covers any
  // other statement that might join a cycle with one.
  for (int retry = 0; retry < kDeadlockRetries && absl::IsAborted(inserted.status()); ++retry) {
    inserted = Query().Exec(statement, params);
  }
  std::map<std::string, uint64_t> seqs;
  if (inserted.ok()) {
    for (int r = 0; r < inserted->size(); ++r) {
      seqs[inserted->Text(r, 0)] = static_cast<uint64_t>(inserted->Int(r, 1));
    }
  }
  for (PendingInsert* p : group) {
    p->status = inserted.status();
    auto it = seqs.find(p->job->view.id());
    p->added = it != seqs.end();
    if (p->added) p->seq = it->second;
  }
}

bool PgJobStore::FarBelowQueueLimit(int64_t rows, int64_t max_queue) {
  absl::MutexLock lock(&count_mu_);
  QueueCount& c = queue_count_;
  if (c.queued < 0 || absl::Now() - c.when > kCountAge) return false;
  const int64_t spare = std::max(kSpare, max_queue / 5);
  if (c.queued + c.inserted_since + rows + spare > max_queue) return false;
  c.inserted_since += rows;
  return true;
}

}  // namespace solverd::server
