#include "client/blob_transfer.h"

#include <cerrno>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "util/sha256.h"

namespace solverd::client {
namespace {

constexpr int64_t kChunkBytes = SolverClient::kUploadChunkBytes;
// A terminal line is redrawn at most this often.
constexpr absl::Duration kRedrawEvery = absl::Milliseconds(100);

std::string Bytes(int64_t n) {
  if (n >= (int64_t{1} << 30)) return absl::StrFormat("%.2f GiB", n / double(int64_t{1} << 30));
  if (n >= (1 << 20)) return absl::StrFormat("%.1f MiB", n / double(1 << 20));
  if (n >= (1 << 10)) return absl::StrFormat("%.1f KiB", n / double(1 << 10));
  return absl::StrCat(n, " B");
}

absl::Status FileError(const std::string& what, const std::string& path) {
  return absl::Status(errno == ENOENT ? absl::StatusCode::kNotFound : absl::StatusCode::kInternal,
                      absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

// Reads the next chunk of `file` into *chunk; false at the end.
bool ReadChunk(std::FILE* file, std::string* chunk) {
  chunk->resize(kChunkBytes);
  chunk->resize(std::fread(chunk->data(), 1, kChunkBytes, file));
  return !chunk->empty();
}

}  // namespace

TransferProgress::TransferProgress(std::string label, int64_t total_bytes, std::FILE* out,
                                   bool terminal)
    : label_(std::move(label)), total_(total_bytes), out_(out), terminal_(terminal),
      start_(absl::Now()) {}

std::string TransferProgress::Figures(int64_t done) const {
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start_);
  const double rate = seconds > 0 ? done / seconds : 0;
  std::string line = absl::StrCat(label_, "  ", Bytes(done));
  if (total_ > 0) {
    absl::StrAppendFormat(&line, " / %s (%.0f%%)", Bytes(total_), 100.0 * done / total_);
  }
  absl::StrAppendFormat(&line, "  %s/s", Bytes(static_cast<int64_t>(rate)));
  if (total_ > 0 && rate > 0 && done < total_) {
    absl::StrAppendFormat(&line, "  %.0fs left", (total_ - done) / rate);
  }
  return line;
}

void TransferProgress::Update(int64_t done_bytes) {
  done_ = done_bytes;
  if (out_ == nullptr) return;
  if (terminal_) {
    if (absl::Now() - last_drawn_ < kRedrawEvery) return;
    last_drawn_ = absl::Now();
    std::fprintf(out_, "\r\033[K%s", Figures(done_).c_str());
  } else {
    const int tenths = total_ > 0 ? static_cast<int>(10 * done_ / total_) : 0;
    if (tenths <= tenths_shown_ || tenths >= 10) return;  // the last line is Finish's
    tenths_shown_ = tenths;
    std::fprintf(out_, "%s\n", Figures(done_).c_str());
  }
  std::fflush(out_);
}

void TransferProgress::Finish() {
  if (out_ == nullptr) return;
  std::fprintf(out_, "%s%s\n", terminal_ ? "\r\033[K" : "", Figures(done_).c_str());
  std::fflush(out_);
}

absl::StatusOr<v1::BlobInfo> UploadFile(SolverClient& client, const std::string& path,
                                        TransferProgress* progress) {
  File file(std::fopen(path.c_str(), "rb"));
  if (file == nullptr) return FileError("cannot read", path);
  grpc::ClientContext ctx;
  v1::BlobInfo info;
  auto writer = client.stub().UploadBlob(&ctx, &info);
  Sha256Hasher hasher;
  // One chunk read ahead, so the digest goes with the last.
  std::string chunk, next;
  bool more = ReadChunk(file.get(), &chunk);
  int64_t offset = 0;
  do {
    hasher.Update(std::string_view(chunk));
    more = more && ReadChunk(file.get(), &next);
    v1::BlobChunk message;
    message.set_offset(offset);
    message.set_data(chunk);
    if (!more) message.set_sha256(hasher.Finish());
    if (!writer->Write(message)) break;  // the server ended the call; Finish says why
    offset += static_cast<int64_t>(chunk.size());
    if (progress != nullptr) progress->Update(offset);
    chunk.swap(next);
  } while (more);
  if (std::ferror(file.get())) {
    ctx.TryCancel();  // a partial upload is not stored
    writer->Finish();
    return FileError("cannot read", path);
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) return FromGrpc(s);
  if (progress != nullptr) progress->Finish();
  return info;
}

absl::StatusOr<int64_t> DownloadFile(SolverClient& client, const std::string& blob_id,
                                     const std::string& path, TransferProgress* progress) {
  const std::string partial = path + ".part";
  File file(std::fopen(partial.c_str(), "wb"));
  if (file == nullptr) return FileError("cannot write", partial);
  grpc::ClientContext ctx;
  v1::DownloadBlobRequest request;
  request.set_blob_id(blob_id);
  auto reader = client.stub().DownloadBlob(&ctx, request);
  Sha256Hasher hasher;
  std::string expected;
  int64_t size = 0;
  absl::Status failed;
  for (v1::BlobChunk chunk; failed.ok() && reader->Read(&chunk);) {
    if (!chunk.sha256().empty()) expected = chunk.sha256();
    hasher.Update(std::string_view(chunk.data()));
    if (std::fwrite(chunk.data().data(), 1, chunk.data().size(), file.get()) !=
        chunk.data().size()) {
      failed = FileError("cannot write", partial);
      ctx.TryCancel();
    }
    size += static_cast<int64_t>(chunk.data().size());
    if (progress != nullptr) progress->Update(size);
  }
  grpc::Status s = reader->Finish();
  if (failed.ok() && !s.ok()) failed = FromGrpc(s);
  if (failed.ok() && std::fclose(file.release()) != 0) failed = FileError("cannot write", partial);
  const std::string digest = hasher.Finish();
  if (failed.ok() && !expected.empty() && digest != expected) {
    failed = absl::DataLossError(absl::StrCat("blob ", blob_id, ": the ", size,
                                              " bytes received hash to ",
                                              absl::BytesToHexString(digest), ", not to ",
                                              absl::BytesToHexString(expected)));
  }
  if (failed.ok() && std::rename(partial.c_str(), path.c_str()) != 0) {
    failed = FileError("cannot rename to", path);
  }
  if (!failed.ok()) {
    std::remove(partial.c_str());
    return failed;
  }
  if (progress != nullptr) progress->Finish();
  return size;
}

}  // namespace solverd::client
