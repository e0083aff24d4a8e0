#include "server/blob_upload.h"

#include <cerrno>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/state_files.h"

namespace solverd::server {

BlobUpload::~BlobUpload() {
  if (file_ != nullptr) std::fclose(file_);
  if (stored_) return;
  if (!path_.empty()) std::remove(path_.c_str());
  if (PgBlobStore* shared = store_.shared(); shared != nullptr) {
    if (!shared_id_.empty()) shared->Abort(shared_id_);
    return;
  }
  store_.Release(owner_, size());
}

absl::Status BlobUpload::Append(int64_t offset, absl::string_view data) {
  if (failed_) return absl::FailedPreconditionError("upload already failed");
  if (offset != size()) {
    failed_ = true;
    return absl::InvalidArgumentError(
        absl::StrCat("offset: chunk starts at ", offset, ", expected ", size()));
  }
  absl::Status reserved = store_.shared() != nullptr
                              ? AppendShared(*store_.shared(), offset, data)
                              : store_.Reserve(owner_, static_cast<int64_t>(data.size()));
  if (!reserved.ok()) {
    failed_ = true;
    return reserved;
  }
  if (store_.shared() == nullptr) {
    if (absl::Status written = AppendFile(data); !written.ok()) {
      failed_ = true;
      store_.Release(owner_, static_cast<int64_t>(data.size()));
      return written;
    }
  }
  size_ += static_cast<int64_t>(data.size());
  hasher_.Update(std::string_view(data.data(), data.size()));
  return absl::OkStatus();
}

absl::Status BlobUpload::AppendFile(absl::string_view data) {
  if (path_.empty()) {
    bytes_.append(data.data(), data.size());
    return absl::OkStatus();
  }
  if (file_ == nullptr && (file_ = std::fopen(path_.c_str(), "wb")) == nullptr) {
    return StateWriteError(path_, errno);
  }
  if (std::fwrite(data.data(), 1, data.size(), file_) != data.size()) {
    return StateWriteError(path_, errno);
  }
  return absl::OkStatus();
}

absl::StatusOr<BlobStore::Blob> BlobUpload::FinishFile(absl::Time now, std::string digest) {
  if (file_ == nullptr && (file_ = std::fopen(path_.c_str(), "wb")) == nullptr) {  // empty
    return StateWriteError(path_, errno);
  }
  const int closed = std::fclose(file_);
  file_ = nullptr;
  if (closed != 0) return StateWriteError(path_, errno);
  return store_.Adopt(owner_, path_, now, std::move(digest));
}

absl::Status BlobUpload::AppendShared(PgBlobStore& shared, int64_t offset,
                                      absl::string_view data) {
  if (shared_id_.empty()) {
    auto begun = shared.Begin(owner_);
    if (!begun.ok()) return begun.status();
    shared_id_ = *std::move(begun);
  }
  return shared.Append(shared_id_, owner_, offset, std::string_view(data.data(), data.size()));
}

absl::StatusOr<BlobStore::Blob> BlobUpload::FinishShared(PgBlobStore& shared,
                                                         std::string digest) {
  if (shared_id_.empty()) {  // an empty blob
    auto begun = shared.Begin(owner_);
    if (!begun.ok()) return begun.status();
    shared_id_ = *std::move(begun);
  }
  auto info = shared.Complete(shared_id_, digest);
  if (!info.ok()) return info.status();  // the destructor drops the rows
  stored_ = true;
  return BlobStore::Blob{info->id, owner_, nullptr, info->sha256, info->expire_time,
                         info->size_bytes, ""};
}

absl::Status BlobUpload::Expect(absl::string_view sha256) {
  if (sha256.size() != kSha256Bytes) {
    failed_ = true;
    return absl::InvalidArgumentError(
        absl::StrCat("sha256: must be 32 bytes, not ", sha256.size()));
  }
  if (!expected_sha256_.empty() && expected_sha256_ != sha256) {
    failed_ = true;
    return absl::InvalidArgumentError("sha256: two chunks name different digests");
  }
  expected_sha256_ = std::string(sha256);
  return absl::OkStatus();
}

absl::StatusOr<BlobStore::Blob> BlobUpload::Finish(absl::Time now) {
  const int64_t reserved = size();
  std::string digest = hasher_.Finish();
  if (!expected_sha256_.empty() && digest != expected_sha256_) {
    failed_ = true;
    return absl::DataLossError(absl::StrCat(
        "sha256: the ", reserved, " bytes received hash to ", absl::BytesToHexString(digest),
        ", not to the ", absl::BytesToHexString(expected_sha256_), " the client sent; nothing "
        "was stored"));
  }
  if (PgBlobStore* shared = store_.shared(); shared != nullptr) {
    return FinishShared(*shared, std::move(digest));
  }
  auto blob = path_.empty() ? store_.Put(owner_, std::move(bytes_), now, std::move(digest))
                            : FinishFile(now, std::move(digest));
  if (!blob.ok()) {
    failed_ = true;
    bytes_.clear();
    if (!path_.empty()) std::remove(path_.c_str());
    store_.Release(owner_, reserved);
    stored_ = true;  // released here, not again by the destructor
    return blob.status();
  }
  stored_ = true;
  return blob;
}

}  // namespace solverd::server
