#include "server/store/pg_sql.h"

#include "absl/strings/str_cat.h"

namespace solverd::server {

std::string PgTextArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

std::string PgEventValues(const std::vector<std::pair<int64_t, std::string>>& events,
                          std::vector<PgParam>* params) {
  std::string values;
  for (size_t i = 0; i < events.size(); ++i) {
    const size_t at = params->size() + 1;
    absl::StrAppend(&values, i > 0 ? "," : "", "($", at, "::bigint, $", at + 1, "::bytea)");
    params->emplace_back(events[i].first);
    params->push_back(PgParam::Bytes(events[i].second));
  }
  return values;
}

absl::Status InsertEvents(PgTransaction& tx, const std::string& job_id,
                          const std::vector<std::pair<int64_t, std::string>>& events) {
  if (events.empty()) return absl::OkStatus();
  std::vector<PgParam> params = {job_id};
  const std::string values = PgEventValues(events, &params);
  return tx.Exec(absl::StrCat("INSERT INTO events(job_id, number, event) SELECT $1, v.number, "
                              "v.event FROM (VALUES ", values, ") AS v(number, event) "
                              "ON CONFLICT DO NOTHING"),
                 params)
      .status();
}

}  // namespace solverd::server
