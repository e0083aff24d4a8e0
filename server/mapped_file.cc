#include "server/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace solverd::server {

absl::StatusOr<std::shared_ptr<const MappedFile>> MappedFile::Open(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    const std::string what = absl::StrCat(path, ": ", std::strerror(error));
    return error == ENOENT ? absl::NotFoundError(what) : absl::InternalError(what);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const std::string what = absl::StrCat(path, ": ", std::strerror(errno));
    close(fd);
    return absl::InternalError(what);
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* data = nullptr;
  if (size > 0) {
    data = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (data == MAP_FAILED) {
      const std::string what = absl::StrCat(path, ": mapping failed: ", std::strerror(errno));
      close(fd);
      return absl::InternalError(what);
    }
    // Tensors are read front to back, layer by layer.
    madvise(data, size, MADV_SEQUENTIAL);
  }
  close(fd);  // the mapping keeps the file
  return std::shared_ptr<const MappedFile>(new MappedFile(data, size));
}

void MappedFile::Release(std::string_view bytes) {
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto start = reinterpret_cast<uintptr_t>(bytes.data());
  // Whole pages only: a page shared with a neighbouring tensor stays.
  const uintptr_t begin = (start + page - 1) / page * page;
  const uintptr_t end = (start + bytes.size()) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) munmap(data_, size_);
}

}  // namespace solverd::server
