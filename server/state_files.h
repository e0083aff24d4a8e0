// Whole files: written so that a crash leaves the old file or the new one,
// never a torn one (everything under --state-dir), and read back whole
// (state files, --data-root inputs, TLS PEM files).
// Stateless functions, safe from any thread (two writers of one path
// race, and the last rename wins).
#ifndef SOLVERD_SERVER_STATE_FILES_H_
#define SOLVERD_SERVER_STATE_FILES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace solverd::server {

// Temp file, fsync, rename, fsync of the directory. RESOURCE_EXHAUSTED when
// the disk or quota is full, INTERNAL otherwise; both name the path.
absl::Status WriteFileAtomically(const std::string& path, const std::string& bytes);
// A file written some other way made durable under a new name: fsync,
// rename, fsync of the directory; errors as WriteFileAtomically().
absl::Status RenameDurably(const std::string& from, const std::string& to);
// NOT_FOUND when missing, INTERNAL when unreadable.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path);
// The status for a failed write of `path` with errno `error`.
absl::Status StateWriteError(const std::string& path, int error);

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_STATE_FILES_H_
