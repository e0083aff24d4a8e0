// The shared store's schema in PostgreSQL, created and migrated by solverd
// itself at start: a version table (solverd_schema) and one migration per
// version, applied in order inside one transaction under an advisory lock,
// so replicas that start together migrate once. A database whose schema is
// newer than this build knows is refused (FAILED_PRECONDITION), never
// written to. Stateless functions, safe from any thread.
//
// Version 1 holds what a client can name, for every replica to share:
//   jobs        one row a job: id, submission order (seq), owner and
//               idempotency key (unique per owner), family, problem and
//               public view (serialized protos), state, the scheduling
//               record (priority, deadline, device, batch key, memory),
//               attempt, the claim's lease (owner, expiry) and a cancel flag;
//   events      a job's numbered events (serialized JobEvents);
//   blobs       id, owner, size, SHA-256, expiry, and blob_chunks, its bytes
//               in order;
//   tuners      name, configuration, checkpoint and a version for
//               optimistic updates.
// Version 2 indexes jobs by lease owner (heartbeats, releases).
#ifndef SOLVERD_SERVER_STORE_PG_SCHEMA_H_
#define SOLVERD_SERVER_STORE_PG_SCHEMA_H_

#include "absl/status/statusor.h"
#include "server/store/pg_connection.h"

namespace solverd::server {

// The newest schema version this build knows.
inline constexpr int kPgSchemaVersion = 3;

// Brings the database's schema to kPgSchemaVersion; returns the version it
// found (0 for an empty database).
absl::StatusOr<int> MigratePgSchema(PgConnection& connection);

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_STORE_PG_SCHEMA_H_
