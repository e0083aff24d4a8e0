#include "server/blob_upload.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace solverd::server {

BlobUpload::~BlobUpload() {
  if (!stored_) store_.Release(owner_, size());
}

absl::Status BlobUpload::Append(int64_t offset, absl::string_view data) {
  if (failed_) return absl::FailedPreconditionError("upload already failed");
  if (offset != size()) {
    failed_ = true;
    return absl::InvalidArgumentError(
        absl::StrCat("offset: chunk starts at ", offset, ", expected ", size()));
  }
  absl::Status reserved = store_.Reserve(owner_, static_cast<int64_t>(data.size()));
  if (!reserved.ok()) {
    failed_ = true;
    return reserved;
  }
  bytes_.append(data.data(), data.size());
  return absl::OkStatus();
}

absl::StatusOr<BlobStore::Blob> BlobUpload::Finish(absl::Time now) {
  const int64_t reserved = size();
  auto blob = store_.Put(owner_, std::move(bytes_), now);
  if (!blob.ok()) {
    failed_ = true;
    bytes_.clear();
    store_.Release(owner_, reserved);
    stored_ = true;  // released here, not again by the destructor
    return blob.status();
  }
  stored_ = true;
  return blob;
}

}  // namespace solverd::server
