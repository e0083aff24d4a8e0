#include "server/store/pg_schema.h"

#include "absl/strings/str_cat.h"

namespace solverd::server {
namespace {

// Taken by every migrating replica: 0x736f6c76 is "solv".
constexpr const char* kLock = "SELECT pg_advisory_xact_lock(1936682102)";

// kMigrations[v] brings version v to v + 1. Never edit one that has
// shipped: add the next.
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE jobs(
  id text PRIMARY KEY,
  seq bigserial UNIQUE NOT NULL,
  owner text NOT NULL DEFAULT '',
  idempotency_key text NOT NULL DEFAULT '',
  family text NOT NULL,
  problem bytea NOT NULL,
  job bytea NOT NULL,
  state smallint NOT NULL,
  priority integer NOT NULL DEFAULT 0,
  deadline timestamptz,
  device smallint NOT NULL DEFAULT 0,
  batch_key text NOT NULL DEFAULT '',
  memory_bytes bigint NOT NULL DEFAULT 0,
  attempt integer NOT NULL DEFAULT 0,
  lease_owner text,
  lease_expiry timestamptz,
  cancel_requested boolean NOT NULL DEFAULT false,
  create_time timestamptz NOT NULL DEFAULT now(),
  finish_time timestamptz);
CREATE UNIQUE INDEX jobs_idempotency ON jobs(owner, idempotency_key) WHERE idempotency_key <> '';
CREATE INDEX jobs_queue ON jobs(priority DESC, seq) WHERE state = 1;
CREATE INDEX jobs_leases ON jobs(lease_expiry) WHERE lease_owner IS NOT NULL;
CREATE TABLE events(
  job_id text NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  number bigint NOT NULL,
  event bytea NOT NULL,
  PRIMARY KEY(job_id, number));
CREATE TABLE blobs(
  id text PRIMARY KEY,
  owner text NOT NULL DEFAULT '',
  size_bytes bigint NOT NULL,
  sha256 bytea,
  complete boolean NOT NULL DEFAULT false,
  expire_time timestamptz NOT NULL);
CREATE TABLE blob_chunks(
  blob_id text NOT NULL REFERENCES blobs(id) ON DELETE CASCADE,
  start bigint NOT NULL,
  data bytea NOT NULL,
  PRIMARY KEY(blob_id, start));
CREATE TABLE tuners(
  name text PRIMARY KEY,
  config bytea NOT NULL,
  checkpoint bytea,
  version bigint NOT NULL DEFAULT 0,
  create_time timestamptz NOT NULL DEFAULT now());
)sql",
    // 2: a replica's heartbeat and shutdown find its leases by owner.
    R"sql(
CREATE INDEX jobs_lease_owner ON jobs(lease_owner) WHERE lease_owner IS NOT NULL;
)sql",
    // 3: every replica's janitor sweeps expired blobs.
    R"sql(
CREATE INDEX blobs_expiry ON blobs(expire_time);
)sql",
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kPgSchemaVersion);

}  // namespace

absl::StatusOr<int> MigratePgSchema(PgConnection& connection) {
  int found = 0;
  absl::Status status = connection.Transaction([&](PgTransaction& tx) -> absl::Status {
    if (auto locked = tx.Exec(kLock); !locked.ok()) return locked.status();
    auto created = tx.Exec("CREATE TABLE IF NOT EXISTS solverd_schema(version integer NOT NULL)");
    if (!created.ok()) return created.status();
    auto version = tx.Exec("SELECT max(version) FROM solverd_schema");
    if (!version.ok()) return version.status();
    found = static_cast<int>(version->Int(0, 0));
    if (found > kPgSchemaVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "store ", connection.name(), ": schema version ", found,
          " is newer than this solverd knows (", kPgSchemaVersion,
          "); run a solverd at least as new as the one that wrote it"));
    }
    for (int v = found; v < kPgSchemaVersion; ++v) {
      if (auto applied = tx.Exec(kMigrations[v]); !applied.ok()) return applied.status();
    }
    if (found == kPgSchemaVersion) return absl::OkStatus();
    if (auto cleared = tx.Exec("DELETE FROM solverd_schema"); !cleared.ok()) {
      return cleared.status();
    }
    return tx.Exec("INSERT INTO solverd_schema(version) VALUES($1)",
                   {PgParam(int64_t{kPgSchemaVersion})})
        .status();
  });
  if (!status.ok()) return status;
  return found;
}

}  // namespace solverd::server
