// Small SQL helpers the PostgreSQL store's parts share: array literals and
// the multi-row insert of a job's events. Stateless; safe from any thread.
#ifndef SOLVERD_SERVER_STORE_PG_SQL_H_
#define SOLVERD_SERVER_STORE_PG_SQL_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "server/store/pg_connection.h"

namespace solverd::server {

// A text[] literal ({"a","b"}) holding `values`, quoted so any text
// survives; pass it as a parameter cast to text[].
std::string PgTextArray(const std::vector<std::string>& values);

// A VALUES list "($k::bigint, $k+1::bytea), ..." of `events` (number,
// serialized JobEvent), whose parameters are appended to *params (so $k
// continues their numbering); columns (number, event).
std::string PgEventValues(const std::vector<std::pair<int64_t, std::string>>& events,
                          std::vector<PgParam>* params);

// Inserts `events` (number, serialized JobEvent) of `job_id` in one
// statement; an event already there is kept (a retried write).
absl::Status InsertEvents(PgTransaction& tx, const std::string& job_id,
                          const std::vector<std::pair<int64_t, std::string>>& events);

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_STORE_PG_SQL_H_
