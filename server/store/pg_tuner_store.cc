#include "server/store/pg_tuner_store.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/store/pg_schema.h"

namespace solverd::server {
namespace {

// Serializes creates (the max_tuners count): 0x736f6c78 ("solx").
constexpr const char* kCreateLock = "SELECT pg_advisory_xact_lock(1936682104)";
constexpr const char* kColumns =
    "name, config, checkpoint, version, extract(epoch FROM create_time)::float8";

PgTunerStore::Row RowAt(const PgRows& rows, int r) {
  PgTunerStore::Row row;
  row.name = rows.Text(r, 0);
  row.config = rows.Bytes(r, 1);
  row.checkpoint = rows.Bytes(r, 2);
  row.version = rows.Int(r, 3);
  double seconds = 0;
  if (absl::SimpleAtod(rows.Text(r, 4), &seconds)) {
    row.create_time = absl::FromUnixMicros(static_cast<int64_t>(seconds * 1e6));
  }
  return row;
}

absl::Status NotFound(const std::string& name) {
  return absl::NotFoundError(absl::StrCat("tuner ", name, " not found"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PgTunerStore>> PgTunerStore::Open(
    const PgConnection::Options& connection) {
  auto opened = PgConnection::Open(connection);
  if (!opened.ok()) return opened.status();
  if (auto migrated = MigratePgSchema(**opened); !migrated.ok()) return migrated.status();
  return std::unique_ptr<PgTunerStore>(new PgTunerStore(*std::move(opened)));
}

absl::StatusOr<PgTunerStore::Row> PgTunerStore::Create(const Row& row, int max_tuners,
                                                       bool* created) {
  Row out;
  *created = false;
  absl::Status status = connection_->Transaction([&](PgTransaction& tx) -> absl::Status {
    if (auto locked = tx.Exec(kCreateLock); !locked.ok()) return locked.status();
    auto existing = tx.Exec(absl::StrCat("SELECT ", kColumns, " FROM tuners WHERE name = $1"),
                            {row.name});
    if (!existing.ok()) return existing.status();
    if (!existing->empty()) {
      out = RowAt(*existing, 0);
      return absl::OkStatus();
    }
    auto count = tx.Exec("SELECT count(*) FROM tuners");
    if (!count.ok()) return count.status();
    if (count->Int(0, 0) >= max_tuners) {
      return absl::ResourceExhaustedError(
          absl::StrCat("at most ", max_tuners, " tuners (across the cluster)"));
    }
    auto inserted = tx.Exec(
        absl::StrCat("INSERT INTO tuners(name, config, checkpoint) VALUES($1, $2, $3) "
                     "RETURNING ", kColumns),
        {row.name, PgParam::Bytes(row.config), PgParam::Bytes(row.checkpoint)});
    if (!inserted.ok()) return inserted.status();
    out = RowAt(*inserted, 0);
    *created = true;
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<PgTunerStore::Row> PgTunerStore::Get(const std::string& name) {
  auto rows = connection_->Exec(absl::StrCat("SELECT ", kColumns, " FROM tuners WHERE name = $1"),
                                {name});
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return NotFound(name);
  return RowAt(*rows, 0);
}

absl::StatusOr<std::vector<PgTunerStore::Row>> PgTunerStore::List() {
  auto rows = connection_->Exec(absl::StrCat("SELECT ", kColumns, " FROM tuners ORDER BY name"));
  if (!rows.ok()) return rows.status();
  std::vector<Row> out;
  for (int r = 0; r < rows->size(); ++r) out.push_back(RowAt(*rows, r));
  return out;
}

absl::Status PgTunerStore::Delete(const std::string& name) {
  auto rows = connection_->Exec("DELETE FROM tuners WHERE name = $1 RETURNING 1", {name});
  if (!rows.ok()) return rows.status();
  return rows->empty() ? NotFound(name) : absl::OkStatus();
}

absl::StatusOr<PgTunerStore::Row> PgTunerStore::Update(const std::string& name,
                                                       const Fold& next) {
  Row out;
  absl::Status status = connection_->Transaction([&](PgTransaction& tx) -> absl::Status {
    auto rows = tx.Exec(
        absl::StrCat("SELECT ", kColumns, " FROM tuners WHERE name = $1 FOR UPDATE"), {name});
    if (!rows.ok()) return rows.status();
    if (rows->empty()) return NotFound(name);
    out = RowAt(*rows, 0);
    auto checkpoint = next(out);
    if (!checkpoint.ok()) return checkpoint.status();
    auto updated = tx.Exec(
        "UPDATE tuners SET checkpoint = $2, version = version + 1 WHERE name = $1 "
        "RETURNING version",
        {name, PgParam::Bytes(*checkpoint)});
    if (!updated.ok()) return updated.status();
    out.checkpoint = *std::move(checkpoint);
    out.version = updated->Int(0, 0);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return out;
}

}  // namespace solverd::server
