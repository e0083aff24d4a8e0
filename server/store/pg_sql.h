// Small SQL helpers the PostgreSQL store's parts share: array literals,
// multi-row VALUES lists and durations. Stateless; safe from any thread.
#ifndef SOLVERD_SERVER_STORE_PG_SQL_H_
#define SOLVERD_SERVER_STORE_PG_SQL_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "server/store/pg_connection.h"

namespace solverd::server {

// A text[] literal ({"a","b"}) holding `values`, quoted so any text
// survives; pass it as a parameter cast to text[].
std::string PgTextArray(const std::vector<std::string>& values);

// One column of a VALUES row: its value and SQL type ("text", "bytea").
struct PgColumn {
  PgParam value;
  const char* type;
};

// Appends a row "($k::type, ...)" to the VALUES list *values (after a
// comma unless it is the first), its values to *params, numbered after
// those already there.
void AppendPgRow(std::string* values, std::vector<PgParam>* params,
                 std::initializer_list<PgColumn> columns);

// A duration as seconds, for a double precision parameter.
std::string PgSeconds(absl::Duration d);

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_STORE_PG_SQL_H_
