// Files to and from solverd's blob store, streamed in chunks so that a file
// of any size passes with constant memory and no overall deadline, each
// checked end to end by its SHA-256. An interrupted transfer leaves
// nothing behind: the server stores an upload only once its last chunk
// and digest have arrived, and a download is written to OUT.part and
// renamed to OUT only when its digest matches.
// Functions are safe from any thread; a TransferProgress is not (one per
// transfer).
#ifndef SOLVERD_CLIENT_BLOB_TRANSFER_H_
#define SOLVERD_CLIENT_BLOB_TRANSFER_H_

#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/solver_client.h"

namespace solverd::client {

// Shows a transfer's bytes, rate and time left: one line redrawn in place
// on a terminal, a plain line per tenth of the way otherwise, nothing when
// `out` is null.
class TransferProgress {
 public:
  TransferProgress(std::string label, int64_t total_bytes, std::FILE* out, bool terminal);
  void Update(int64_t done_bytes);
  // Ends the line (on a terminal) with the final figures.
  void Finish();

 private:
  std::string Figures(int64_t done) const;

  const std::string label_;
  const int64_t total_;
  std::FILE* const out_;
  const bool terminal_;
  const absl::Time start_;
  int64_t done_ = 0;
  int tenths_shown_ = 0;
  absl::Time last_drawn_ = absl::InfinitePast();
};

// Streams the file at `path` up; its BlobInfo (id, size, digest).
absl::StatusOr<v1::BlobInfo> UploadFile(SolverClient& client, const std::string& path,
                                        TransferProgress* progress);

// Streams blob `blob_id` down into `path`; its size in bytes.
absl::StatusOr<int64_t> DownloadFile(SolverClient& client, const std::string& blob_id,
                                     const std::string& path, TransferProgress* progress);

}  // namespace solverd::client

#endif  // SOLVERD_CLIENT_BLOB_TRANSFER_H_
