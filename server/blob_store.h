// BlobStore: uploaded byte strings that problems refer to by id, so inputs
// larger than one gRPC message can be sent in chunks. Total bytes (stored
// and still uploading) are bounded by a quota, and each token's bytes by a
// per-owner quota; blobs expire after a TTL. Blobs are immutable once
// stored and shared by reference, and each carries its SHA-256, checked on
// every read (Get, Read, Load): bytes that no longer match are DATA_LOSS,
// never handed to a job. With a directory (--state-dir/blobs) each blob is
// a file there only, written atomically before Put() returns, as are the
// uploads and outputs written there as they come (OutputPath(), Adopt()),
// and Load() brings them back after a restart: Read() streams them from
// the file and Get() loads them. Jobs' outputs may go to a directory of
// their own (--output_root), kept there the same way. With the shared store
// (ShareThrough(), for --store) the blobs live in PostgreSQL instead
// (PgBlobStore): the quotas and TTL count the cluster's blobs, Read()
// streams chunk by chunk, and an output written to the output directory is
// copied into it chunk by chunk.
// Thread-safe.
#ifndef SOLVERD_SERVER_BLOB_STORE_H_
#define SOLVERD_SERVER_BLOB_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/store/pg_blob_store.h"

namespace solverd::server {

// A fresh, unguessable blob id ("blob-" and 16 hex digits), in either store.
std::string NewBlobId();

class BlobStore {
 public:
  struct Options {
    int64_t quota_bytes = int64_t{4} << 30;
    absl::Duration ttl = absl::Hours(24);
    // Bytes one owner (a named token) may hold; the anonymous owner "" is
    // bounded by quota_bytes alone.
    int64_t owner_quota_bytes = int64_t{1} << 30;
    std::string dir;  // empty: in memory only
    // Where jobs write outputs (OutputPath()); empty: `dir`, unless the
    // blobs are shared, in which case outputs are built in memory.
    std::string output_dir;
  };
  struct Blob {
    std::string id;
    std::string owner;
    std::shared_ptr<const std::string> bytes;  // null for a blob kept on disk only
    std::string sha256;  // 32 bytes
    absl::Time expire_time;
    int64_t size = 0;
    std::string file;  // the blob's file when kept on disk, else ""
  };

  explicit BlobStore(Options options) : options_(std::move(options)) {}
  BlobStore(const BlobStore&) = delete;
  BlobStore& operator=(const BlobStore&) = delete;

  // From now on blobs are stored in, and read from, `shared`. REQUIRES:
  // called once, before any blob is stored.
  void ShareThrough(std::unique_ptr<PgBlobStore> shared) { shared_ = std::move(shared); }
  // The shared store's blobs (an upload writes there chunk by chunk), or
  // null in the embedded mode.
  PgBlobStore* shared() const { return shared_.get(); }

  // Reads the blobs in the directory back (their TTL counts from when they
  // were written); returns a warning per file it had to skip.
  std::vector<std::string> Load(absl::Time now);

  // Claims `bytes` of `owner`'s quota for an upload in progress;
  // RESOURCE_EXHAUSTED (naming the quota) when it does not fit. Release()
  // gives it back. (Shared: both do nothing; the store admits each write.)
  absl::Status Reserve(const std::string& owner, int64_t bytes);
  void Release(const std::string& owner, int64_t bytes);
  // Stores `bytes`, whose size `owner` Reserve()d, and returns the new
  // blob; `sha256` is their digest when the caller has it (else computed).
  // On an error (disk full) the reservation is still held.
  absl::StatusOr<Blob> Put(const std::string& owner, std::string bytes, absl::Time now,
                           std::string sha256 = "");
  // Whether blobs live as files in the blob directory only (a directory,
  // and no shared store), not in memory.
  bool KeepsBlobsOnDisk() const { return !options_.dir.empty() && shared_ == nullptr; }
  // Where a job may write an output to Adopt(): a fresh path in the output
  // directory; "" when there is none (the output is built in memory).
  std::string OutputPath() const;
  bool WritesOutputsToDisk() const { return !OutputDir().empty(); }
  // Stores the file at `path` (from OutputPath(), its size Reserve()d by
  // `owner`) as a blob: digested in one streaming read (unless `sha256`,
  // its digest, is given), synced and renamed into place, or with the
  // shared store copied into it chunk by chunk and removed. On an error the
  // file is removed and the reservation still held.
  absl::StatusOr<Blob> Adopt(const std::string& owner, const std::string& path, absl::Time now,
                             std::string sha256 = "");
  // The file of a blob kept on disk, checked against its digest in one
  // streaming read (so it can be mapped rather than read); "" for a blob
  // in memory or in the shared store. Errors as Get().
  absl::StatusOr<std::string> VerifiedFile(const std::string& id) const;
  // NOT_FOUND for unknown or expired ids; DATA_LOSS when the bytes no
  // longer match their digest. A blob kept on disk is read whole.
  absl::StatusOr<Blob> Get(const std::string& id) const;
  // Hands the blob's bytes to `sink` in order, `max_piece` bytes at most at
  // a time, with the blob's description (bytes unset); errors as Get(),
  // DATA_LOSS possibly after some pieces (shared: checked as it streams).
  using PieceSink = std::function<absl::Status(const Blob& blob, int64_t offset,
                                               absl::string_view piece)>;
  absl::Status Read(const std::string& id, int64_t max_piece, const PieceSink& sink) const;
  // `owner`'s unexpired blobs (descriptions: bytes unset), soonest to
  // expire first.
  absl::StatusOr<std::vector<Blob>> List(const std::string& owner, absl::Time now) const;
  // Drops `owner`'s blob `id` and gives its bytes back to the quotas;
  // NOT_FOUND when `owner` has no such blob. Jobs already submitted keep
  // their copy of the data.
  absl::Status Delete(const std::string& id, const std::string& owner);
  // Drops expired blobs; returns how many.
  int Sweep(absl::Time now);
  int64_t used_bytes() const;

  static constexpr int64_t kFilePiece = int64_t{1} << 20;  // one read of a blob's file

 private:
  static absl::Status Mismatch(const std::string& id);
  std::string PathFor(const std::string& dir, const Blob& blob) const;
  const std::string& OutputDir() const;
  // Gives a blob taken out of blobs_ back to the quotas and removes its file.
  void Forget(const Blob& blob);
  // Stores a job's output file in the shared store; removes the file.
  absl::StatusOr<Blob> CopyToShared(const std::string& owner, const std::string& path);
  // The blob files in `dir` (warnings for those it had to skip).
  void LoadDir(const std::string& dir, absl::Time now, std::vector<std::string>* warnings);
  void AddLocked(Blob blob) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Blob> Find(const std::string& id) const;
  // A blob kept on disk, to `sink` in pieces, checked against its digest.
  absl::Status ReadFile(const Blob& blob, int64_t max_piece, const PieceSink& sink) const;

  const Options options_;
  mutable absl::Mutex mu_;
  int64_t used_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // stored + reserved
  absl::flat_hash_map<std::string, int64_t> owner_bytes_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Blob> blobs_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<PgBlobStore> shared_;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_BLOB_STORE_H_
