// BlobStore: uploaded byte strings that problems refer to by id, so inputs
// larger than one gRPC message can be sent in chunks. Total bytes (stored
// and still uploading) are bounded by a quota; blobs expire after a TTL.
// Blobs are immutable once stored and shared by reference. Thread-safe.
#ifndef SOLVERD_SERVER_BLOB_STORE_H_
#define SOLVERD_SERVER_BLOB_STORE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace solverd::server {

class BlobStore {
 public:
  struct Options {
    int64_t quota_bytes = int64_t{4} << 30;
    absl::Duration ttl = absl::Hours(24);
  };
  struct Blob {
    std::string id;
    std::shared_ptr<const std::string> bytes;
    absl::Time expire_time;
  };

  explicit BlobStore(Options options) : options_(options) {}
  BlobStore(const BlobStore&) = delete;
  BlobStore& operator=(const BlobStore&) = delete;

  // Claims `bytes` of quota for an upload in progress; RESOURCE_EXHAUSTED
  // (naming the quota) when it does not fit. Release() gives it back.
  absl::Status Reserve(int64_t bytes);
  void Release(int64_t bytes);
  // Stores `bytes`, whose size was Reserve()d, and returns the new blob.
  Blob Put(std::string bytes, absl::Time now);
  // NOT_FOUND for unknown or expired ids.
  absl::StatusOr<Blob> Get(const std::string& id) const;
  // Drops expired blobs; returns how many.
  int Sweep(absl::Time now);
  int64_t used_bytes() const;

 private:
  const Options options_;
  mutable absl::Mutex mu_;
  int64_t used_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // stored + reserved
  absl::flat_hash_map<std::string, Blob> blobs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_BLOB_STORE_H_
