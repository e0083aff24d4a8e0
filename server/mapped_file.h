// MappedFile: a file mapped read-only into memory. Its pages are read as
// they are first touched and the kernel may drop them again under
// pressure, so a multi-GB checkpoint costs address space rather than
// resident memory. Immutable after Open, so safe from any thread.
#ifndef SOLVERD_SERVER_MAPPED_FILE_H_
#define SOLVERD_SERVER_MAPPED_FILE_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace solverd::server {

class MappedFile {
 public:
  // NOT_FOUND for a missing file, INTERNAL for one that cannot be mapped.
  static absl::StatusOr<std::shared_ptr<const MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::string_view bytes() const { return {static_cast<const char*>(data_), size_}; }

  // Drops the whole pages inside `bytes` from this process's memory; they
  // are read from the file again if touched. REQUIRES: `bytes` lies within
  // a MappedFile's bytes() (elsewhere it would zero memory).
  static void Release(std::string_view bytes);

 private:
  MappedFile(void* data, size_t size) : data_(data), size_(size) {}

  void* const data_;  // null for an empty file
  const size_t size_;
};

// Bytes a job reads, with what keeps them valid: a blob's buffer or a
// MappedFile.
struct HeldBytes {
  std::shared_ptr<const void> holder;
  std::string_view bytes;
  bool mapped = false;  // holder is a MappedFile (MappedFile::Release applies)
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_MAPPED_FILE_H_
