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

absl::Status InsertEvents(PgTransaction& tx, const std::string& job_id,
                          const std::vector<std::pair<int64_t, std::string>>& events) {
  if (events.empty()) return absl::OkStatus();
  std::string sql = "INSERT INTO events(job_id, number, event) VALUES ";
  std::vector<PgParam> params = {job_id};
  for (size_t i = 0; i < events.size(); ++i) {
    const int at = static_cast<int>(params.size()) + 1;
    absl::StrAppend(&sql, i > 0 ? "," : "", "($1, $", at, "::bigint, $", at + 1, ")");
    params.emplace_back(events[i].first);
    params.push_back(PgParam::Bytes(events[i].second));
  }
  sql += " ON CONFLICT DO NOTHING";
  return tx.Exec(sql, params).status();
}

}  // namespace solverd::server
