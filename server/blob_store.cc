#include "server/blob_store.h"

#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace solverd::server {

absl::Status BlobStore::Reserve(int64_t bytes) {
  absl::MutexLock lock(&mu_);
  if (used_bytes_ + bytes > options_.quota_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "blob quota of ", options_.quota_bytes, " bytes exceeded (",
        used_bytes_, " in use, ", bytes, " more asked for)"));
  }
  used_bytes_ += bytes;
  return absl::OkStatus();
}

void BlobStore::Release(int64_t bytes) {
  absl::MutexLock lock(&mu_);
  used_bytes_ -= bytes;
}

BlobStore::Blob BlobStore::Put(std::string bytes, absl::Time now) {
  static absl::BitGen* gen = new absl::BitGen();
  absl::MutexLock lock(&mu_);
  Blob blob;
  blob.id = absl::StrFormat("blob-%016x", absl::Uniform<uint64_t>(*gen));
  blob.bytes = std::make_shared<const std::string>(std::move(bytes));
  blob.expire_time = now + options_.ttl;
  blobs_[blob.id] = blob;
  return blob;
}

absl::StatusOr<BlobStore::Blob> BlobStore::Get(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = blobs_.find(id);
  if (it == blobs_.end()) return absl::NotFoundError(absl::StrCat("blob ", id, " not found"));
  return it->second;
}

int BlobStore::Sweep(absl::Time now) {
  absl::MutexLock lock(&mu_);
  int dropped = 0;
  for (auto it = blobs_.begin(); it != blobs_.end();) {
    if (it->second.expire_time <= now) {
      used_bytes_ -= static_cast<int64_t>(it->second.bytes->size());
      blobs_.erase(it++);
      ++dropped;
    } else {
      ++it;
    }
  }
  return dropped;
}

int64_t BlobStore::used_bytes() const {
  absl::MutexLock lock(&mu_);
  return used_bytes_;
}

}  // namespace solverd::server
