// Reading server-side input files, confined to --data-root: a path is
// resolved (symlinks and ".." included) and refused unless it stays inside
// the root, so a client can name files the operator shared and nothing else.
// Stateless functions, safe from any thread.
#ifndef SOLVERD_SERVER_DATA_ROOT_H_
#define SOLVERD_SERVER_DATA_ROOT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/mapped_file.h"

namespace solverd::server {

// Where `path` (relative to `root`) really is, symlinks resolved.
// FAILED_PRECONDITION when the server has no data root; INVALID_ARGUMENT
// (naming `field`) for a path that leaves the root; NOT_FOUND for nothing
// there.
absl::StatusOr<std::string> ResolveUnderDataRoot(const std::string& root, const std::string& path,
                                                 absl::string_view field);

// The bytes of `path` (relative to `root`). FAILED_PRECONDITION when the
// server has no data root; INVALID_ARGUMENT (naming `field`) for a path that
// leaves the root or a file over `max_bytes`; NOT_FOUND for a missing file.
absl::StatusOr<std::string> ReadUnderDataRoot(const std::string& root, const std::string& path,
                                              absl::string_view field, int64_t max_bytes);

// As ReadUnderDataRoot, but mapped rather than read (large inputs). The
// file must not shrink while it is mapped (its readers would fault), as
// for any reader that maps files.
absl::StatusOr<std::shared_ptr<const MappedFile>> MapUnderDataRoot(const std::string& root,
                                                                   const std::string& path,
                                                                   absl::string_view field,
                                                                   int64_t max_bytes);

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_DATA_ROOT_H_
