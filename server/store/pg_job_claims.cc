// PgJobStore's leases: claiming jobs, renewing and releasing leases,
// cancels across replicas, deadlines and retention.
#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/store/pg_job_store.h"
#include "server/store/pg_sql.h"

namespace solverd::server {
namespace {

// The next jobs by priority, then submission, among two kinds, each read
// through its own index so that a claim costs the same however many
// finished jobs the table holds: queued jobs nobody leases (jobs_queue),
// and queued or running jobs whose lease lapsed (jobs_leases). Rows that
// another claimer holds are skipped, not waited for.
constexpr const char* kClaim = R"sql(
WITH fresh AS (
  SELECT id, priority, seq FROM jobs
  WHERE state = 1 AND lease_owner IS NULL
    AND (cardinality($4::text[]) = 0 OR id = ANY($4::text[]))
  ORDER BY priority DESC, seq LIMIT $3::integer FOR UPDATE SKIP LOCKED),
lapsed AS (
  SELECT id, priority, seq FROM jobs
  WHERE lease_owner IS NOT NULL AND lease_expiry < now() AND state IN (1, 2)
    AND (cardinality($4::text[]) = 0 OR id = ANY($4::text[]))
  ORDER BY priority DESC, seq LIMIT $3::integer FOR UPDATE SKIP LOCKED),
chosen AS (
  SELECT id FROM (SELECT * FROM fresh UNION ALL SELECT * FROM lapsed) c
  ORDER BY priority DESC, seq LIMIT $3::integer)
UPDATE jobs SET lease_owner = $1, lease_expiry = now() + make_interval(secs => $2::double precision)
WHERE id IN (SELECT id FROM chosen)
RETURNING id, seq, problem, job, cancel_requested, priority)sql";

}  // namespace

absl::StatusOr<std::vector<PgJobStore::Claimed>> PgJobStore::Claim(
    int limit, const std::vector<std::string>& ids) {
  Timer timer(this, "claim");
  auto rows = Query().Exec(kClaim, {options_.replica, PgSeconds(options_.lease), int64_t{limit},
                                    PgTextArray(ids)});
  if (!rows.ok()) return rows.status();
  std::vector<std::pair<std::pair<int64_t, int64_t>, Claimed>> claimed;  // (-priority, seq)
  std::map<std::string, size_t> index;
  std::vector<std::string> claimed_ids;
  for (int r = 0; r < rows->size(); ++r) {
    Claimed c;
    c.record.seq = static_cast<uint64_t>(rows->Int(r, 1));
    if (!c.record.spec.ParseFromString(rows->Bytes(r, 2)) ||
        !c.record.job.ParseFromString(rows->Bytes(r, 3))) {
      return absl::DataLossError(
          absl::StrCat("store: job ", rows->Text(r, 0), " cannot be parsed"));
    }
    c.cancel_requested = rows->Text(r, 4) == "t";
    claimed_ids.push_back(rows->Text(r, 0));
    claimed.push_back({{-rows->Int(r, 5), rows->Int(r, 1)}, std::move(c)});
  }
  std::sort(claimed.begin(), claimed.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < claimed.size(); ++i) index[claimed[i].second.record.job.id()] = i;
  if (!claimed.empty()) {
    auto events = Query().Exec(
        "SELECT job_id, event FROM events WHERE job_id = ANY($1::text[]) ORDER BY job_id, number",
        {PgTextArray(claimed_ids)});
    if (!events.ok()) return events.status();  // the leases expire: others claim them
    for (int r = 0; r < events->size(); ++r) {
      v1::JobEvent e;
      if (!e.ParseFromString(events->Bytes(r, 1))) continue;
      claimed[index[events->Text(r, 0)]].second.record.events.push_back(std::move(e));
    }
  }
  std::vector<Claimed> out;
  for (auto& [order, c] : claimed) out.push_back(std::move(c));
  return out;
}

absl::StatusOr<std::vector<std::string>> PgJobStore::ExpiredQueued(int limit) {
  auto rows = Query().Exec(
      "SELECT id FROM jobs WHERE state = 1 AND lease_owner IS NULL AND deadline < now() "
      "LIMIT $1::integer",
      {int64_t{limit}});
  if (!rows.ok()) return rows.status();
  std::vector<std::string> out;
  for (int r = 0; r < rows->size(); ++r) out.push_back(rows->Text(r, 0));
  return out;
}

absl::StatusOr<PgJobStore::Leases> PgJobStore::Heartbeat() {
  Timer timer(this, "heartbeat");
  auto rows = Query().Exec(
      "UPDATE jobs SET lease_expiry = now() + make_interval(secs => $2::double precision) "
      "WHERE id IN (SELECT id FROM jobs WHERE lease_owner = $1 AND state IN (1, 2) "
      "ORDER BY id FOR UPDATE) AND lease_owner = $1 RETURNING id, cancel_requested",
      {options_.replica, PgSeconds(options_.lease)});
  if (!rows.ok()) return rows.status();
  Leases leases;
  for (int r = 0; r < rows->size(); ++r) {
    leases.held.insert(rows->Text(r, 0));
    if (rows->Text(r, 1) == "t") leases.cancel_requested.push_back(rows->Text(r, 0));
  }
  return leases;
}

absl::StatusOr<std::string> PgJobStore::RequestCancel(const std::string& id) {
  std::string holder;
  absl::Status status = Query().Transaction([&](PgTransaction& tx) -> absl::Status {
    auto rows = tx.Exec(
        "UPDATE jobs SET cancel_requested = true WHERE id = $1 AND state IN (1, 2) "
        "RETURNING CASE WHEN lease_expiry > now() THEN lease_owner END",
        {id});
    if (!rows.ok()) return rows.status();
    if (rows->empty()) {
      auto found = tx.Exec("SELECT 1 FROM jobs WHERE id = $1", {id});
      if (!found.ok()) return found.status();
      if (found->empty()) return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
      return absl::FailedPreconditionError(absl::StrCat("job ", id, " has finished"));
    }
    holder = rows->Text(0, 0);
    if (holder.empty()) return absl::OkStatus();
    return tx.Exec("SELECT pg_notify('solverd_cancel', $1)", {id}).status();
  });
  if (!status.ok()) return status;
  return holder;
}

absl::Status PgJobStore::ReleaseLeases() {
  auto released = Query().Exec(
      // '' with a lapsed expiry: claimed at once as a lapsed lease (its
      // index), and no replica's lease-conditioned write matches it.
      "UPDATE jobs SET lease_owner = '', lease_expiry = '-infinity' "
      "WHERE lease_owner = $1 AND state IN (1, 2)",
      {options_.replica});
  if (!released.ok()) return released.status();
  return Query().Exec("NOTIFY solverd_queue").status();
}

absl::StatusOr<int64_t> PgJobStore::Sweep(absl::Duration ttl) {
  auto rows = Query().Exec(
      "DELETE FROM jobs WHERE state >= 3 AND finish_time < now() - "
      "make_interval(secs => $1::double precision)",
      {PgSeconds(ttl)});
  if (!rows.ok()) return rows.status();
  return rows->affected();
}

}  // namespace solverd::server
