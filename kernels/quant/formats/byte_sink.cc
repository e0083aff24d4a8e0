#include "quant/formats/byte_sink.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>

namespace solverd::quant::internal {
namespace {

constexpr int64_t kPiece = int64_t{1} << 20;

Status Failed(const std::string& what, const std::string& path) {
  return Internal("output: cannot " + what + " " + path + ": " + std::strerror(errno));
}

}  // namespace

Status StringSink::Append(std::string_view bytes) {
  out_->append(bytes);
  size_ += static_cast<int64_t>(bytes.size());
  return Status::Ok();
}

Status FileSink::Create(const std::string& path, std::unique_ptr<FileSink>* out) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) return Failed("create", path);
  out->reset(new FileSink(file, path));
  return Status::Ok();
}

FileSink::~FileSink() {
  if (file_ != nullptr) std::fclose(file_);
}

Status FileSink::Append(std::string_view bytes) {
  if (!error_.ok()) return error_;
  if (std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) {
    error_ = Failed("write", path_);
  }
  size_ += static_cast<int64_t>(bytes.size());
  return error_;
}

Status FileSink::Close() {
  if (file_ == nullptr) return error_;
  if (std::fclose(file_) != 0 && error_.ok()) error_ = Failed("write", path_);
  file_ = nullptr;
  return error_;
}

Status WriteFile(const std::string& path, const std::function<Status(ByteSink*)>& write,
                 int64_t* size) {
  std::unique_ptr<FileSink> file;
  SOLVERD_RETURN_IF_ERROR(FileSink::Create(path, &file));
  Status s = write(file.get());
  const Status closed = file->Close();
  if (s.ok()) s = closed;
  if (!s.ok()) std::remove(path.c_str());
  *size = file->size();
  return s;
}

std::string FolderOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

Spill::~Spill() {
  if (file_ != nullptr) std::fclose(file_);
}

Status Spill::UseFileIn(const std::string& dir) {
  std::random_device random;
  for (int attempt = 0; attempt < 16 && file_ == nullptr; ++attempt) {
    const std::string path = dir + "/.spill-" + std::to_string(random()) + std::to_string(random());
    file_ = std::fopen(path.c_str(), "wx+b");  // exclusive: never another's file
    if (file_ != nullptr) std::remove(path.c_str());
  }
  if (file_ == nullptr) return Failed("create a file in", dir);
  dir_ = dir;
  return Status::Ok();
}

Status Spill::Append(std::string_view bytes) {
  size_ += static_cast<int64_t>(bytes.size());
  if (file_ == nullptr) {
    memory_.append(bytes);
  } else if (error_.ok() && std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) {
    error_ = Failed("write a file in", dir_);
  }
  return error_;
}

Status Spill::Read(int64_t offset, int64_t n, std::string* out) {
  if (!error_.ok()) return error_;
  if (file_ == nullptr) {
    out->assign(memory_, static_cast<size_t>(offset), static_cast<size_t>(n));
    return Status::Ok();
  }
  out->resize(static_cast<size_t>(n));
  if (std::fseek(file_, static_cast<long>(offset), SEEK_SET) != 0 ||
      std::fread(out->data(), 1, out->size(), file_) != out->size()) {
    error_ = Failed("read back a file in", dir_);
    return error_;
  }
  std::fseek(file_, 0, SEEK_END);  // later appends go to the end
  return Status::Ok();
}

Status Spill::MoveTo(ByteSink* out) {
  if (!error_.ok()) return error_;
  if (file_ == nullptr) {
    SOLVERD_RETURN_IF_ERROR(out->Append(memory_));
    std::string().swap(memory_);
    size_ = 0;
    return Status::Ok();
  }
  std::string piece;
  for (int64_t at = 0; at < size_; at += kPiece) {
    SOLVERD_RETURN_IF_ERROR(Read(at, std::min(kPiece, size_ - at), &piece));
    SOLVERD_RETURN_IF_ERROR(out->Append(piece));
  }
  std::fclose(file_);
  file_ = nullptr;
  size_ = 0;
  return Status::Ok();
}

}  // namespace solverd::quant::internal
