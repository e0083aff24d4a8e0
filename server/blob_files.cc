// BlobStore's files: blobs kept on disk (--state-dir's blobs/, --output-root),
// written by Put() and Adopt(), found again by Load(), and read back in
// pieces with their digest checked; and outputs staged on disk on their way
// into the shared store.
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/blob_store.h"
#include "util/sha256.h"
#include "server/state_files.h"

namespace solverd::server {
namespace {

constexpr char kSuffix[] = ".blob";
constexpr char kOutputSuffix[] = ".output.tmp";  // OutputPath()'s, until Adopt()

// Hands the file at `path` to `piece` a MiB at a time; its digest.
absl::StatusOr<std::string> DigestFile(
    const std::string& path, const std::function<absl::Status(absl::string_view)>& piece) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return absl::NotFoundError(absl::StrCat("blob file ", path, " is gone"));
  Sha256Hasher hasher;
  std::string buffer(BlobStore::kFilePiece, '\0');
  absl::Status status;
  size_t n;
  while (status.ok() && (n = std::fread(buffer.data(), 1, buffer.size(), file)) > 0) {
    const absl::string_view read(buffer.data(), n);
    hasher.Update(std::string_view(buffer.data(), n));
    if (piece) status = piece(read);
  }
  if (status.ok() && std::ferror(file)) status = absl::DataLossError("cannot read " + path);
  std::fclose(file);
  if (!status.ok()) return status;
  return hasher.Finish();
}

}  // namespace

// <id>.<hex owner>.<hex sha256>.blob: the owner's name is a token name, hex
// keeps any character of it out of the path. (Files of earlier versions lack
// the digest; Load() computes it.)
std::string BlobStore::PathFor(const std::string& dir, const Blob& blob) const {
  return absl::StrCat(dir, "/", blob.id, ".", absl::BytesToHexString(blob.owner), ".",
                      absl::BytesToHexString(blob.sha256), kSuffix);
}

const std::string& BlobStore::OutputDir() const {
  static const std::string* const kNone = new std::string();
  if (!options_.output_dir.empty()) return options_.output_dir;
  return KeepsBlobsOnDisk() ? options_.dir : *kNone;
}

std::string BlobStore::OutputPath() const {
  if (OutputDir().empty()) return "";
  return absl::StrCat(OutputDir(), "/", NewBlobId(), kOutputSuffix);
}

absl::StatusOr<BlobStore::Blob> BlobStore::CopyToShared(const std::string& owner,
                                                        const std::string& path) {
  absl::StatusOr<std::string> id = shared_->Begin(owner);
  if (!id.ok()) {
    std::remove(path.c_str());
    return id.status();
  }
  int64_t offset = 0;
  absl::StatusOr<std::string> digest = DigestFile(path, [&](absl::string_view piece) {
    const std::string_view chunk(piece.data(), piece.size());
    offset += static_cast<int64_t>(piece.size());
    return shared_->Append(*id, owner, offset - static_cast<int64_t>(piece.size()), chunk);
  });
  std::remove(path.c_str());
  if (!digest.ok()) {
    shared_->Abort(*id);
    return digest.status();
  }
  absl::StatusOr<PgBlobStore::Info> info = shared_->Complete(*id, *digest);
  if (!info.ok()) {
    shared_->Abort(*id);
    return info.status();
  }
  return Blob{info->id, owner, nullptr, info->sha256, info->expire_time, info->size_bytes, ""};
}

absl::StatusOr<BlobStore::Blob> BlobStore::Adopt(const std::string& owner,
                                                 const std::string& path, absl::Time now,
                                                 std::string sha256) {
  if (shared_ != nullptr) return CopyToShared(owner, path);
  Blob blob;
  blob.id = NewBlobId();
  blob.owner = owner;
  blob.expire_time = now + options_.ttl;
  std::error_code ec;
  blob.size = static_cast<int64_t>(std::filesystem::file_size(path, ec));
  absl::StatusOr<std::string> digest = std::move(sha256);
  if (!ec && digest->size() != kSha256Bytes) digest = DigestFile(path, nullptr);
  if (ec || !digest.ok()) {
    std::remove(path.c_str());
    return ec ? absl::InternalError(absl::StrCat("output file ", path, ": ", ec.message()))
              : digest.status();
  }
  blob.sha256 = *std::move(digest);
  blob.file = PathFor(OutputDir(), blob);
  if (absl::Status moved = RenameDurably(path, blob.file); !moved.ok()) {
    std::remove(path.c_str());
    return moved;
  }
  absl::MutexLock lock(&mu_);
  blobs_[blob.id] = blob;  // its size was Reserve()d
  return blob;
}

std::vector<std::string> BlobStore::Load(absl::Time now) {
  std::vector<std::string> warnings;
  if (!options_.dir.empty()) LoadDir(options_.dir, now, &warnings);
  if (!options_.output_dir.empty() && options_.output_dir != options_.dir) {
    LoadDir(options_.output_dir, now, &warnings);
  }
  return warnings;
}

void BlobStore::LoadDir(const std::string& dir, absl::Time now,
                        std::vector<std::string>* warnings) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  for (const auto& file : std::filesystem::directory_iterator(dir, ec)) {
    const std::string path = file.path().string();
    if (absl::EndsWith(path, kOutputSuffix)) {  // a job's output cut short by a crash
      std::remove(path.c_str());
      continue;
    }
    if (file.path().extension() != kSuffix) continue;  // a torn .tmp, or not ours
    std::vector<std::string> parts = absl::StrSplit(file.path().stem().string(), '.');
    struct stat info;
    if ((parts.size() != 2 && parts.size() != 3) || ::stat(path.c_str(), &info) != 0) {
      warnings->push_back(absl::StrCat(path, ": not a blob file; skipped"));
      continue;
    }
    Blob blob;
    blob.id = parts[0];
    blob.owner = absl::HexStringToBytes(parts[1]);
    blob.expire_time = absl::FromUnixSeconds(info.st_mtime) + options_.ttl;
    if (blob.expire_time <= now) {
      std::remove(path.c_str());
      continue;
    }
    // Checked now, read when asked for: a restart holds no blob in memory.
    absl::StatusOr<std::string> digest = DigestFile(path, nullptr);
    if (!digest.ok()) {
      warnings->push_back(std::string(digest.status().message()));
      continue;
    }
    blob.sha256 = *std::move(digest);
    if (parts.size() == 3 && absl::BytesToHexString(blob.sha256) != parts[2]) {
      warnings->push_back(absl::StrCat(path, ": its bytes no longer match their SHA-256; skipped"));
      continue;
    }
    blob.size = static_cast<int64_t>(info.st_size);
    blob.file = PathFor(dir, blob);
    if (parts.size() == 2 && std::rename(path.c_str(), blob.file.c_str()) != 0) {
      warnings->push_back(absl::StrCat(path, ": cannot be renamed with its digest; skipped"));
      continue;
    }
    absl::MutexLock lock(&mu_);
    AddLocked(std::move(blob));
  }
}

absl::StatusOr<std::string> BlobStore::VerifiedFile(const std::string& id) const {
  if (shared_ != nullptr) return std::string();
  absl::StatusOr<Blob> blob = Find(id);
  if (!blob.ok()) return blob.status();
  if (blob->bytes != nullptr) return std::string();
  absl::StatusOr<std::string> digest = DigestFile(blob->file, nullptr);
  if (!digest.ok()) return digest.status();
  if (*digest != blob->sha256) return Mismatch(id);
  return blob->file;
}

absl::Status BlobStore::ReadFile(const Blob& blob, int64_t max_piece,
                                 const PieceSink& sink) const {
  int64_t offset = 0;
  absl::StatusOr<std::string> digest =
      DigestFile(blob.file, [&](absl::string_view piece) -> absl::Status {
        for (size_t at = 0; at < piece.size(); at += static_cast<size_t>(max_piece)) {
          const absl::string_view part = piece.substr(at, static_cast<size_t>(max_piece));
          if (absl::Status s = sink(blob, offset, part); !s.ok()) return s;
          offset += static_cast<int64_t>(part.size());
        }
        return absl::OkStatus();
      });
  if (!digest.ok()) return digest.status();
  if (*digest != blob.sha256 || offset != blob.size) return Mismatch(blob.id);
  if (offset == 0) return sink(blob, 0, "");
  return absl::OkStatus();
}

}  // namespace solverd::server
