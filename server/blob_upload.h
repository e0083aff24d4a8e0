// BlobUpload: one UploadBlob stream being put together. Chunks must come
// in order (each one's offset is the bytes so far); each chunk's size is
// reserved from the store's quota as it arrives, and given back if the
// upload fails or is abandoned. The bytes are hashed as they come; a digest
// the client sent must match them, or nothing is stored. Not thread-safe
// (one stream, one thread). With the shared store each chunk goes to the
// database as it arrives, and with a blob directory (--state-dir) to a file
// there that Finish() adopts: the bytes are then never held here whole.
#ifndef SOLVERD_SERVER_BLOB_UPLOAD_H_
#define SOLVERD_SERVER_BLOB_UPLOAD_H_

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/blob_store.h"
#include "util/sha256.h"

namespace solverd::server {

class BlobUpload {
 public:
  // `owner`: the uploading token's name, whose quota the bytes count against.
  BlobUpload(BlobStore& store, std::string owner)
      : store_(store), owner_(std::move(owner)),
        path_(store.shared() != nullptr ? "" : store.OutputPath()) {}
  BlobUpload(const BlobUpload&) = delete;
  BlobUpload& operator=(const BlobUpload&) = delete;
  ~BlobUpload();  // releases the reservation unless Finish() stored it

  // INVALID_ARGUMENT for an out-of-order offset, RESOURCE_EXHAUSTED past the
  // quota; the upload is dead after an error.
  absl::Status Append(int64_t offset, absl::string_view data);
  // The client's SHA-256 of the whole blob (BlobChunk.sha256).
  // INVALID_ARGUMENT unless 32 bytes, or unlike one given before.
  absl::Status Expect(absl::string_view sha256);
  // Stores the bytes as a blob; DATA_LOSS, storing nothing, when they do
  // not hash to the expected digest. REQUIRES: every Append() succeeded.
  absl::StatusOr<BlobStore::Blob> Finish(absl::Time now);

  int64_t size() const { return size_; }

 private:
  absl::Status AppendShared(PgBlobStore& shared, int64_t offset, absl::string_view data);
  absl::StatusOr<BlobStore::Blob> FinishShared(PgBlobStore& shared, std::string digest);
  absl::Status AppendFile(absl::string_view data);
  absl::StatusOr<BlobStore::Blob> FinishFile(absl::Time now, std::string digest);

  BlobStore& store_;
  const std::string owner_;
  std::string bytes_;       // embedded store in memory: the bytes so far
  std::string path_;        // embedded store on disk: the file the bytes go to
  std::FILE* file_ = nullptr;
  std::string shared_id_;   // shared store: the blob being written, once begun
  int64_t size_ = 0;
  Sha256Hasher hasher_;
  std::string expected_sha256_;  // empty: the client sent none
  bool failed_ = false;
  bool stored_ = false;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_BLOB_UPLOAD_H_
