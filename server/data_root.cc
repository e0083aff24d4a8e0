#include "server/data_root.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/state_files.h"

namespace solverd::server {

absl::StatusOr<std::string> ResolveUnderDataRoot(const std::string& root, const std::string& path,
                                                 absl::string_view field) {
  namespace fs = std::filesystem;
  if (root.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, ": this server reads no files (start it with --data-root)"));
  }
  if (path.empty() || fs::path(path).is_absolute()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": must be a path relative to the data root"));
  }
  std::error_code ec;
  const fs::path canonical_root = fs::canonical(root, ec);
  if (ec) return absl::FailedPreconditionError(absl::StrCat("--data-root ", root, ": ", ec.message()));
  // Symlinks in the existing part resolved, ".." folded: where it really points.
  const fs::path resolved = fs::weakly_canonical(canonical_root / path, ec);
  const std::string prefix = canonical_root.string() + "/";
  if (ec || !absl::StartsWith(resolved.string(), prefix)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", path, " leaves the data root"));
  }
  if (!fs::exists(resolved, ec)) {
    return absl::NotFoundError(absl::StrCat(field, ": ", path, " not found under the data root"));
  }
  return resolved.string();
}

namespace {

// `path` resolved, when it is a regular file of at most `max_bytes`.
absl::StatusOr<std::string> RegularFileUnderDataRoot(const std::string& root,
                                                     const std::string& path,
                                                     absl::string_view field, int64_t max_bytes) {
  namespace fs = std::filesystem;
  auto resolved = ResolveUnderDataRoot(root, path, field);
  if (!resolved.ok()) return resolved.status();
  std::error_code ec;
  if (!fs::is_regular_file(*resolved, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", path, " is not a regular file"));
  }
  const auto size = fs::file_size(*resolved, ec);
  if (ec || static_cast<int64_t>(size) > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", path, " is larger than ",
                                                   max_bytes, " bytes"));
  }
  return resolved;
}

}  // namespace

absl::StatusOr<std::string> ReadUnderDataRoot(const std::string& root, const std::string& path,
                                              absl::string_view field, int64_t max_bytes) {
  auto resolved = RegularFileUnderDataRoot(root, path, field, max_bytes);
  if (!resolved.ok()) return resolved.status();
  absl::StatusOr<std::string> bytes = ReadWholeFile(*resolved);
  if (!bytes.ok()) return absl::InternalError(absl::StrCat(field, ": reading ", path, " failed"));
  return bytes;
}

absl::StatusOr<std::shared_ptr<const MappedFile>> MapUnderDataRoot(const std::string& root,
                                                                   const std::string& path,
                                                                   absl::string_view field,
                                                                   int64_t max_bytes) {
  auto resolved = RegularFileUnderDataRoot(root, path, field, max_bytes);
  if (!resolved.ok()) return resolved.status();
  auto mapped = MappedFile::Open(*resolved);
  if (!mapped.ok()) {
    return absl::Status(mapped.status().code(), absl::StrCat(field, ": ", path, ": ",
                                                             mapped.status().message()));
  }
  return mapped;
}

}  // namespace solverd::server
