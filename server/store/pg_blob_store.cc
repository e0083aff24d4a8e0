#include "server/store/pg_blob_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/blob_store.h"
#include "util/sha256.h"

namespace solverd::server {
namespace {

// Serializes quota checks across replicas: 0x736f6c77 ("solw").
constexpr const char* kQuotaLock = "SELECT pg_advisory_xact_lock(1936682103)";

absl::Time FromEpochText(const std::string& text) {
  double seconds = 0;
  if (!absl::SimpleAtod(text, &seconds)) return absl::InfinitePast();
  return absl::FromUnixMicros(static_cast<int64_t>(seconds * 1e6));
}

absl::Status QuotaError(const PgBlobStore::Options& o, const std::string& owner, int64_t all,
                        int64_t mine, int64_t more) {
  if (all + more > o.quota_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "blob quota of ", o.quota_bytes, " bytes exceeded across the cluster (", all,
        " in use, ", more, " more asked for)"));
  }
  if (!owner.empty() && mine + more > o.owner_quota_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "token ", owner, ": blob quota of ", o.owner_quota_bytes,
        " bytes per token exceeded across the cluster (--max_blob_bytes_per_token; ", mine,
        " in use, ", more, " more asked for)"));
  }
  return absl::OkStatus();
}

constexpr const char* kStat =
    "SELECT owner, size_bytes, sha256, extract(epoch FROM expire_time)::float8 FROM blobs "
    "WHERE id = $1 AND complete AND expire_time > now()";

}  // namespace

absl::StatusOr<std::unique_ptr<PgBlobStore>> PgBlobStore::Open(Options options) {
  std::unique_ptr<PgBlobStore> store(new PgBlobStore(std::move(options)));
  for (int i = 0; i < std::max(1, store->options_.connections); ++i) {
    auto connection = PgConnection::Open(store->options_.connection);
    if (!connection.ok()) return connection.status();
    store->pool_.push_back(*std::move(connection));
  }
  return store;
}

PgConnection& PgBlobStore::Query() { return *pool_[next_.fetch_add(1) % pool_.size()]; }

absl::StatusOr<std::string> PgBlobStore::Begin(const std::string& owner) {
  std::string id = NewBlobId();
  auto made = Query().Exec(
      "INSERT INTO blobs(id, owner, size_bytes, expire_time) "
      "VALUES($1, $2, 0, now() + make_interval(secs => $3::double precision))",
      {id, owner, absl::StrCat(absl::ToDoubleSeconds(options_.ttl))});
  if (!made.ok()) return made.status();
  return id;
}

absl::Status PgBlobStore::Append(const std::string& id, const std::string& owner,
                                 int64_t offset, std::string_view data) {
  const auto size = static_cast<int64_t>(data.size());
  return Query().Transaction([&](PgTransaction& tx) -> absl::Status {
    if (auto locked = tx.Exec(kQuotaLock); !locked.ok()) return locked.status();
    auto used = tx.Exec(
        "SELECT coalesce(sum(size_bytes), 0), "
        "coalesce(sum(size_bytes) FILTER (WHERE owner = $1), 0) "
        "FROM blobs WHERE expire_time > now()",
        {owner});
    if (!used.ok()) return used.status();
    if (absl::Status s = QuotaError(options_, owner, used->Int(0, 0), used->Int(0, 1), size);
        !s.ok()) {
      return s;
    }
    auto grown = tx.Exec(
        "UPDATE blobs SET size_bytes = size_bytes + $3 "
        "WHERE id = $1 AND size_bytes = $2 AND NOT complete RETURNING 1",
        {id, offset, size});
    if (!grown.ok()) return grown.status();
    if (grown->empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("blob ", id, ": no upload in progress at offset ", offset));
    }
    return tx.Exec("INSERT INTO blob_chunks(blob_id, start, data) VALUES($1, $2, $3)",
                   {id, offset, PgParam::Bytes(std::string(data))})
        .status();
  });
}

absl::StatusOr<PgBlobStore::Info> PgBlobStore::Complete(const std::string& id,
                                                        const std::string& sha256) {
  auto done = Query().Exec(
      "UPDATE blobs SET complete = true, sha256 = $2, "
      "expire_time = now() + make_interval(secs => $3::double precision) "
      "WHERE id = $1 AND NOT complete "
      "RETURNING owner, size_bytes, extract(epoch FROM expire_time)::float8",
      {id, PgParam::Bytes(sha256), absl::StrCat(absl::ToDoubleSeconds(options_.ttl))});
  if (!done.ok()) return done.status();
  if (done->empty()) {
    return absl::FailedPreconditionError(absl::StrCat("blob ", id, ": no upload in progress"));
  }
  return Info{id, done->Text(0, 0), done->Int(0, 1), sha256, FromEpochText(done->Text(0, 2))};
}

void PgBlobStore::Abort(const std::string& id) {
  Query().Exec("DELETE FROM blobs WHERE id = $1 AND NOT complete", {id}).IgnoreError();
}

absl::StatusOr<PgBlobStore::Info> PgBlobStore::Put(const std::string& owner,
                                                   std::string_view bytes,
                                                   const std::string& sha256) {
  auto id = Begin(owner);
  if (!id.ok()) return id.status();
  for (size_t at = 0; at < bytes.size(); at += kChunkBytes) {
    absl::Status appended =
        Append(*id, owner, static_cast<int64_t>(at), bytes.substr(at, kChunkBytes));
    if (!appended.ok()) {
      Abort(*id);
      return appended;
    }
  }
  auto info = Complete(*id, sha256);
  if (!info.ok()) Abort(*id);
  return info;
}

absl::StatusOr<PgBlobStore::Info> PgBlobStore::Stat(const std::string& id) {
  auto rows = Query().Exec(kStat, {id});
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return absl::NotFoundError(absl::StrCat("blob ", id, " not found"));
  return Info{id, rows->Text(0, 0), rows->Int(0, 1), rows->Bytes(0, 2),
              FromEpochText(rows->Text(0, 3))};
}

absl::Status PgBlobStore::Read(const std::string& id, const ChunkSink& sink, Info* info) {
  auto stat = Stat(id);
  if (!stat.ok()) return stat.status();
  if (info != nullptr) *info = *stat;
  Sha256Hasher hasher;
  int64_t at = 0;
  while (at < stat->size_bytes) {
    // One chunk per statement: a download never holds more than a chunk.
    auto rows = Query().Exec(
        "SELECT start, data FROM blob_chunks WHERE blob_id = $1 AND start >= $2 "
        "ORDER BY start LIMIT 1",
        {id, at});
    if (!rows.ok()) return rows.status();
    if (rows->empty() || rows->Int(0, 0) != at) break;  // vanished (swept) or torn
    const std::string data = rows->Bytes(0, 1);
    if (data.empty()) break;
    hasher.Update(data);
    if (absl::Status s = sink(data); !s.ok()) return s;
    at += static_cast<int64_t>(data.size());
  }
  if (at != stat->size_bytes || hasher.Finish() != stat->sha256) {
    return absl::DataLossError(
        absl::StrCat("blob ", id, ": its bytes no longer match their SHA-256"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<PgBlobStore::Info>> PgBlobStore::List(const std::string& owner) {
  auto rows = Query().Exec(
      "SELECT id, size_bytes, sha256, extract(epoch FROM expire_time)::float8 FROM blobs "
      "WHERE owner = $1 AND complete AND expire_time > now() ORDER BY expire_time, id",
      {owner});
  if (!rows.ok()) return rows.status();
  std::vector<Info> out;
  for (int r = 0; r < rows->size(); ++r) {
    out.push_back(Info{rows->Text(r, 0), owner, rows->Int(r, 1), rows->Bytes(r, 2),
                       FromEpochText(rows->Text(r, 3))});
  }
  return out;
}

absl::Status PgBlobStore::Delete(const std::string& id, const std::string& owner) {
  auto gone = Query().Exec(
      "DELETE FROM blobs WHERE id = $1 AND owner = $2 AND complete RETURNING 1", {id, owner});
  if (!gone.ok()) return gone.status();
  if (gone->empty()) return absl::NotFoundError(absl::StrCat("blob ", id, " not found"));
  return absl::OkStatus();
}

absl::StatusOr<int64_t> PgBlobStore::Sweep() {
  auto gone = Query().Exec("DELETE FROM blobs WHERE expire_time <= now() RETURNING 1");
  if (!gone.ok()) return gone.status();
  return gone->size();
}

absl::StatusOr<int64_t> PgBlobStore::UsedBytes() {
  auto rows = Query().Exec(
      "SELECT coalesce(sum(size_bytes), 0) FROM blobs WHERE expire_time > now()");
  if (!rows.ok()) return rows.status();
  return rows->Int(0, 0);
}

}  // namespace solverd::server
