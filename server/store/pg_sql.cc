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

void AppendPgRow(std::string* values, std::vector<PgParam>* params,
                 std::initializer_list<PgColumn> columns) {
  absl::StrAppend(values, values->empty() ? "(" : ",(");
  bool first = true;
  for (const PgColumn& column : columns) {
    params->push_back(column.value);
    absl::StrAppend(values, first ? "" : ", ", "$", params->size(), "::", column.type);
    first = false;
  }
  values->push_back(')');
}

std::string PgSeconds(absl::Duration d) { return absl::StrCat(absl::ToDoubleSeconds(d)); }

}  // namespace solverd::server
