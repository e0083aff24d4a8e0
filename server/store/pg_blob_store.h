// PgBlobStore: uploaded blobs in the shared store (--store=postgres://...),
// so a blob uploaded to one replica is read by a job on another and
// downloaded from a third. Bytes travel in chunks, one row each
// (blob_chunks), both ways: an upload writes each chunk as it arrives and a
// download reads one chunk at a time, so neither holds a whole blob. The
// quotas (all blobs, and each owner's) count every replica's blobs: a chunk
// is admitted under a cluster-wide advisory lock. A blob is readable once
// complete, until its TTL; each carries its SHA-256, checked as it is read.
//
// Thread-safe: statements go through a small pool of connections.
#ifndef SOLVERD_SERVER_STORE_PG_BLOB_STORE_H_
#define SOLVERD_SERVER_STORE_PG_BLOB_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/store/pg_connection.h"

namespace solverd::server {

class PgBlobStore {
 public:
  struct Options {
    PgConnection::Options connection;
    int64_t quota_bytes = int64_t{4} << 30;        // all blobs in the cluster
    int64_t owner_quota_bytes = int64_t{1} << 30;  // per named owner
    absl::Duration ttl = absl::Hours(24);
    int connections = 2;
  };
  // A stored blob's description (its bytes stay in the database).
  struct Info {
    std::string id;
    std::string owner;
    int64_t size_bytes = 0;
    std::string sha256;  // 32 bytes
    absl::Time expire_time;
  };
  using ChunkSink = std::function<absl::Status(std::string_view chunk)>;

  // Connects. REQUIRES: the schema is migrated (PgJobStore::Open does it).
  static absl::StatusOr<std::unique_ptr<PgBlobStore>> Open(Options options);

  // An upload: Begin() makes an incomplete blob, Append() adds the chunk
  // starting at `offset` (RESOURCE_EXHAUSTED naming the quota it would
  // pass), Complete() makes it readable under its digest; Abort() drops it.
  absl::StatusOr<std::string> Begin(const std::string& owner);
  absl::Status Append(const std::string& id, const std::string& owner, int64_t offset,
                      std::string_view data);
  absl::StatusOr<Info> Complete(const std::string& id, const std::string& sha256);
  void Abort(const std::string& id);
  // All of `bytes` as one blob, in chunks (a job's output).
  absl::StatusOr<Info> Put(const std::string& owner, std::string_view bytes,
                           const std::string& sha256);

  // The blob's description; NOT_FOUND unless complete and unexpired.
  absl::StatusOr<Info> Stat(const std::string& id);
  // Hands the blob's chunks in order to `sink`; DATA_LOSS when what was
  // read does not hash to the blob's digest (or it vanished midway).
  absl::Status Read(const std::string& id, const ChunkSink& sink, Info* info = nullptr);
  // `owner`'s complete, unexpired blobs, soonest to expire first.
  absl::StatusOr<std::vector<Info>> List(const std::string& owner);
  // Drops `owner`'s blob `id`; NOT_FOUND when it has no such blob.
  absl::Status Delete(const std::string& id, const std::string& owner);
  // Drops expired blobs (and uploads abandoned past the TTL).
  absl::StatusOr<int64_t> Sweep();
  // Bytes held by the cluster's blobs, complete or still uploading.
  absl::StatusOr<int64_t> UsedBytes();

  static constexpr int64_t kChunkBytes = int64_t{1} << 20;  // Put()'s rows

 private:
  explicit PgBlobStore(Options options) : options_(std::move(options)) {}
  PgConnection& Query();

  const Options options_;
  std::vector<std::unique_ptr<PgConnection>> pool_;
  std::atomic<uint64_t> next_{0};
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_STORE_PG_BLOB_STORE_H_
