#include "server/blob_store.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "util/sha256.h"
#include "server/state_files.h"

namespace solverd::server {
absl::Status BlobStore::Mismatch(const std::string& id) {
  return absl::DataLossError(absl::StrCat("blob ", id, ": its bytes no longer match their SHA-256"));
}

absl::Status BlobStore::Reserve(const std::string& owner, int64_t bytes) {
  if (shared_ != nullptr) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  if (used_bytes_ + bytes > options_.quota_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "blob quota of ", options_.quota_bytes, " bytes exceeded (",
        used_bytes_, " in use, ", bytes, " more asked for)"));
  }
  int64_t& mine = owner_bytes_[owner];
  if (!owner.empty() && mine + bytes > options_.owner_quota_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "token ", owner, ": blob quota of ", options_.owner_quota_bytes,
        " bytes per token exceeded (--max_blob_bytes_per_token; ", mine, " in use, ", bytes,
        " more asked for)"));
  }
  mine += bytes;
  used_bytes_ += bytes;
  return absl::OkStatus();
}

void BlobStore::Release(const std::string& owner, int64_t bytes) {
  if (shared_ != nullptr) return;
  absl::MutexLock lock(&mu_);
  used_bytes_ -= bytes;
  auto it = owner_bytes_.find(owner);
  if (it != owner_bytes_.end() && (it->second -= bytes) <= 0) owner_bytes_.erase(it);
}

std::string NewBlobId() {
  static absl::BitGen* gen = new absl::BitGen();
  static absl::Mutex gen_mu(absl::kConstInit);
  absl::MutexLock lock(&gen_mu);
  return absl::StrFormat("blob-%016x", absl::Uniform<uint64_t>(*gen));
}

absl::StatusOr<BlobStore::Blob> BlobStore::Put(const std::string& owner, std::string bytes,
                                               absl::Time now, std::string sha256) {
  if (sha256.size() != kSha256Bytes) sha256 = Sha256(bytes);
  if (shared_ != nullptr) {
    auto stored = shared_->Put(owner, bytes, sha256);
    if (!stored.ok()) return stored.status();
    const auto size = static_cast<int64_t>(bytes.size());
    return Blob{stored->id, owner, std::make_shared<const std::string>(std::move(bytes)),
                std::move(sha256), stored->expire_time, size, ""};
  }
  Blob blob;
  blob.id = NewBlobId();
  blob.owner = owner;
  blob.sha256 = std::move(sha256);
  blob.size = static_cast<int64_t>(bytes.size());
  blob.bytes = std::make_shared<const std::string>(std::move(bytes));
  blob.expire_time = now + options_.ttl;
  Blob stored = blob;
  if (KeepsBlobsOnDisk()) {  // the file only, as every blob there
    stored.file = blob.file = PathFor(options_.dir, blob);
    absl::Status written = WriteFileAtomically(blob.file, *blob.bytes);
    if (!written.ok()) return written;
    stored.bytes = nullptr;
  }
  absl::MutexLock lock(&mu_);
  blobs_[blob.id] = std::move(stored);
  return blob;
}

void BlobStore::AddLocked(Blob blob) {
  used_bytes_ += blob.size;
  owner_bytes_[blob.owner] += blob.size;
  blobs_[blob.id] = std::move(blob);
}

absl::StatusOr<BlobStore::Blob> BlobStore::Find(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = blobs_.find(id);
  if (it == blobs_.end()) return absl::NotFoundError(absl::StrCat("blob ", id, " not found"));
  return it->second;
}

absl::StatusOr<BlobStore::Blob> BlobStore::Get(const std::string& id) const {
  if (shared_ != nullptr) {  // a job's input: it needs the bytes whole
    auto bytes = std::make_shared<std::string>();
    PgBlobStore::Info info;
    absl::Status read = shared_->Read(
        id,
        [&](std::string_view chunk) {
          bytes->append(chunk);
          return absl::OkStatus();
        },
        &info);
    if (!read.ok()) return read;
    return Blob{id, info.owner, std::move(bytes), info.sha256, info.expire_time, info.size_bytes,
                ""};
  }
  absl::StatusOr<Blob> blob = Find(id);
  if (!blob.ok()) return blob.status();
  if (blob->bytes == nullptr) {  // kept on disk: read it whole
    auto bytes = std::make_shared<std::string>();
    bytes->reserve(static_cast<size_t>(blob->size));
    absl::Status read = ReadFile(*blob, kFilePiece, [&](const Blob&, int64_t, absl::string_view p) {
      bytes->append(p.data(), p.size());
      return absl::OkStatus();
    });
    if (!read.ok()) return read;
    blob->bytes = std::move(bytes);
    return blob;
  }
  if (Sha256(*blob->bytes) != blob->sha256) return Mismatch(id);  // outside mu_: reads it all
  return blob;
}

absl::Status BlobStore::Read(const std::string& id, int64_t max_piece,
                             const PieceSink& sink) const {
  const int64_t step = std::max<int64_t>(1, max_piece);
  auto pieces = [&](const Blob& blob, int64_t offset, absl::string_view bytes) -> absl::Status {
    for (int64_t at = 0; at < static_cast<int64_t>(bytes.size()); at += step) {
      if (absl::Status s = sink(blob, offset + at, bytes.substr(at, step)); !s.ok()) return s;
    }
    return absl::OkStatus();
  };
  if (shared_ == nullptr) {
    absl::StatusOr<Blob> found = Find(id);
    if (!found.ok()) return found.status();
    if (found->bytes == nullptr) return ReadFile(*found, step, sink);
    if (Sha256(*found->bytes) != found->sha256) return Mismatch(id);
    if (found->bytes->empty()) return sink(*found, 0, "");
    return pieces(*found, 0, *found->bytes);
  }
  PgBlobStore::Info info;  // filled in before the first chunk
  auto described = [&] {
    return Blob{id, info.owner, nullptr, info.sha256, info.expire_time, info.size_bytes, ""};
  };
  int64_t offset = 0;
  absl::Status read = shared_->Read(
      id,
      [&](std::string_view chunk) {
        absl::Status s = pieces(described(), offset, absl::string_view(chunk.data(), chunk.size()));
        offset += static_cast<int64_t>(chunk.size());
        return s;
      },
      &info);
  if (read.ok() && info.size_bytes == 0) return sink(described(), 0, "");
  return read;
}

absl::StatusOr<std::vector<BlobStore::Blob>> BlobStore::List(const std::string& owner,
                                                              absl::Time now) const {
  std::vector<Blob> out;
  if (shared_ != nullptr) {
    auto listed = shared_->List(owner);
    if (!listed.ok()) return listed.status();
    for (PgBlobStore::Info& info : *listed) {
      out.push_back(Blob{std::move(info.id), owner, nullptr, std::move(info.sha256),
                         info.expire_time, info.size_bytes, ""});
    }
    return out;
  }
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, blob] : blobs_) {
      if (blob.owner != owner || blob.expire_time <= now) continue;
      out.push_back(blob);
      out.back().bytes = nullptr;
    }
  }
  std::sort(out.begin(), out.end(), [](const Blob& a, const Blob& b) {
    return std::tie(a.expire_time, a.id) < std::tie(b.expire_time, b.id);
  });
  return out;
}

absl::Status BlobStore::Delete(const std::string& id, const std::string& owner) {
  if (shared_ != nullptr) return shared_->Delete(id, owner);
  Blob gone;
  {
    absl::MutexLock lock(&mu_);
    auto it = blobs_.find(id);
    if (it == blobs_.end() || it->second.owner != owner) {
      return absl::NotFoundError(absl::StrCat("blob ", id, " not found"));
    }
    gone = std::move(it->second);
    blobs_.erase(it);
  }
  Forget(gone);
  return absl::OkStatus();
}

int BlobStore::Sweep(absl::Time now) {
  if (shared_ != nullptr) {
    auto swept = shared_->Sweep();
    return swept.ok() ? static_cast<int>(*swept) : 0;
  }
  std::vector<Blob> expired;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = blobs_.begin(); it != blobs_.end();) {
      if (it->second.expire_time <= now) {
        expired.push_back(std::move(it->second));
        blobs_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  for (const Blob& blob : expired) Forget(blob);
  return static_cast<int>(expired.size());
}

void BlobStore::Forget(const Blob& blob) {
  Release(blob.owner, blob.size);
  if (!blob.file.empty()) std::remove(blob.file.c_str());
}

int64_t BlobStore::used_bytes() const {
  if (shared_ != nullptr) return shared_->UsedBytes().value_or(0);
  absl::MutexLock lock(&mu_);
  return used_bytes_;
}

}  // namespace solverd::server
