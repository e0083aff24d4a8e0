#include "server/blob_upload.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace solverd::server {

BlobUpload::~BlobUpload() {
  if (!stored_) store_.Release(size());
}

absl::Status BlobUpload::Append(int64_t offset, absl::string_view data) {
  if (failed_) return absl::FailedPreconditionError("upload already failed");
  if (offset != size()) {
    failed_ = true;
    return absl::InvalidArgumentError(
        absl::StrCat("offset: chunk starts at ", offset, ", expected ", size()));
  }
  absl::Status reserved = store_.Reserve(static_cast<int64_t>(data.size()));
  if (!reserved.ok()) {
    failed_ = true;
    return reserved;
  }
  bytes_.append(data.data(), data.size());
  return absl::OkStatus();
}

BlobStore::Blob BlobUpload::Finish(absl::Time now) {
  stored_ = true;
  return store_.Put(std::move(bytes_), now);
}

}  // namespace solverd::server
