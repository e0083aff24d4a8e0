// Where a model writer's bytes go: a string in memory, or a file written as
// they come; and a Spill, bytes set aside until the header that must
// precede them is known (a safetensors or GGUF header lists every tensor's
// offset), kept in memory or in an unnamed file on disk. A model's output
// can be gigabytes: on disk it is never held whole in memory. Errors are
// sticky: the first failed write is what every later call, and Finish /
// MoveTo, return. Internal to kernels/quant. Thread-compatible.
#ifndef SOLVERD_KERNELS_QUANT_FORMATS_BYTE_SINK_H_
#define SOLVERD_KERNELS_QUANT_FORMATS_BYTE_SINK_H_

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace solverd::quant::internal {

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual Status Append(std::string_view bytes) = 0;
  int64_t size() const { return size_; }

 protected:
  int64_t size_ = 0;
};

class StringSink final : public ByteSink {
 public:
  explicit StringSink(std::string* out) : out_(out) {}
  Status Append(std::string_view bytes) override;

 private:
  std::string* const out_;
};

class FileSink final : public ByteSink {
 public:
  // Creates or truncates `path`; INTERNAL naming it when it cannot.
  static Status Create(const std::string& path, std::unique_ptr<FileSink>* out);
  ~FileSink() override;
  Status Append(std::string_view bytes) override;
  // Flushes and closes the file; its first error, if any.
  Status Close();

 private:
  FileSink(std::FILE* file, std::string path) : file_(file), path_(std::move(path)) {}
  std::FILE* file_;
  const std::string path_;
  Status error_;
};

// Writes the file at `path` by `write`, handing it the file's sink, and
// closes it; on any error the file is removed. Its size in *size.
Status WriteFile(const std::string& path, const std::function<Status(ByteSink*)>& write,
                 int64_t* size);

// The folder of `path` ("." for a bare name): where a Spill beside the file
// it is written to goes.
std::string FolderOf(const std::string& path);

class Spill final : public ByteSink {
 public:
  Spill() = default;  // in memory
  ~Spill() override;
  Spill(const Spill&) = delete;
  Spill& operator=(const Spill&) = delete;

  // From now on (REQUIRES: nothing appended yet) the bytes go to a file in
  // `dir`, removed as soon as it is created, so it vanishes when closed
  // even if the process dies.
  Status UseFileIn(const std::string& dir);
  Status Append(std::string_view bytes) override;
  // The bytes [offset, offset + n) (REQUIRES: within size()).
  Status Read(int64_t offset, int64_t n, std::string* out);
  // Appends everything to `out` in pieces of at most 1 MiB and empties
  // the spill; the first error of the spill's writes or of `out`.
  Status MoveTo(ByteSink* out);

 private:
  std::string memory_;
  std::FILE* file_ = nullptr;
  std::string dir_;
  Status error_;
};

}  // namespace solverd::quant::internal

#endif  // SOLVERD_KERNELS_QUANT_FORMATS_BYTE_SINK_H_
