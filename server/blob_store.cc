#include "server/blob_store.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "server/sha256.h"
#include "server/state_files.h"

namespace solverd::server {
namespace {

constexpr char kSuffix[] = ".blob";
constexpr char kOutputSuffix[] = ".output.tmp";  // OutputPath()'s, until Adopt()
constexpr int64_t kFilePiece = int64_t{1} << 20;

// Hands the file at `path` to `piece` a MiB at a time; its digest.
absl::StatusOr<std::string> DigestFile(
    const std::string& path, const std::function<absl::Status(absl::string_view)>& piece) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return absl::NotFoundError(absl::StrCat("blob file ", path, " is gone"));
  Sha256Hasher hasher;
  std::string buffer(kFilePiece, '\0');
  absl::Status status;
  size_t n;
  while (status.ok() && (n = std::fread(buffer.data(), 1, buffer.size(), file)) > 0) {
    const absl::string_view read(buffer.data(), n);
    hasher.Update(read);
    if (piece) status = piece(read);
  }
  if (status.ok() && std::ferror(file)) status = absl::DataLossError("cannot read " + path);
  std::fclose(file);
  if (!status.ok()) return status;
  return hasher.Finish();
}

absl::Status Mismatch(const std::string& id) {
  return absl::DataLossError(absl::StrCat("blob ", id, ": its bytes no longer match their SHA-256"));
}

}  // namespace

// <id>.<hex owner>.<hex sha256>.blob: the owner's name is a token name, hex
// keeps any character of it out of the path. (Files of earlier versions lack
// the digest; Load() computes it.)
std::string BlobStore::PathFor(const std::string& dir, const Blob& blob) const {
  return absl::StrCat(dir, "/", blob.id, ".", absl::BytesToHexString(blob.owner), ".",
                      absl::BytesToHexString(blob.sha256), kSuffix);
}

absl::Status BlobStore::Reserve(const std::string& owner, int64_t bytes) {
  if (shared_ != nullptr) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  if (used_bytes_ + bytes > options_.quota_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "blob quota of ", options_.quota_bytes, " bytes exceeded (",
        used_bytes_, " in use, ", bytes, " more asked for)"));
  }
  int64_t& mine = owner_bytes_[owner];
  if (!owner.empty() && mine + bytes > options_.owner_quota_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "token ", owner, ": blob quota of ", options_.owner_quota_bytes,
        " bytes per token exceeded (--max_blob_bytes_per_token; ", mine, " in use, ", bytes,
        " more asked for)"));
  }
  mine += bytes;
  used_bytes_ += bytes;
  return absl::OkStatus();
}

void BlobStore::Release(const std::string& owner, int64_t bytes) {
  if (shared_ != nullptr) return;
  absl::MutexLock lock(&mu_);
  used_bytes_ -= bytes;
  auto it = owner_bytes_.find(owner);
  if (it != owner_bytes_.end() && (it->second -= bytes) <= 0) owner_bytes_.erase(it);
}

std::string NewBlobId() {
  static absl::BitGen* gen = new absl::BitGen();
  static absl::Mutex gen_mu(absl::kConstInit);
  absl::MutexLock lock(&gen_mu);
  return absl::StrFormat("blob-%016x", absl::Uniform<uint64_t>(*gen));
}

absl::StatusOr<BlobStore::Blob> BlobStore::Put(const std::string& owner, std::string bytes,
                                               absl::Time now, std::string sha256) {
  if (sha256.size() != kSha256Bytes) sha256 = Sha256(bytes);
  if (shared_ != nullptr) {
    auto stored = shared_->Put(owner, bytes, sha256);
    if (!stored.ok()) return stored.status();
    const auto size = static_cast<int64_t>(bytes.size());
    return Blob{stored->id, owner, std::make_shared<const std::string>(std::move(bytes)),
                std::move(sha256), stored->expire_time, size, ""};
  }
  Blob blob;
  blob.id = NewBlobId();
  blob.owner = owner;
  blob.sha256 = std::move(sha256);
  blob.size = static_cast<int64_t>(bytes.size());
  blob.bytes = std::make_shared<const std::string>(std::move(bytes));
  blob.expire_time = now + options_.ttl;
  Blob stored = blob;
  if (KeepsBlobsOnDisk()) {  // the file only, as every blob there
    stored.file = blob.file = PathFor(options_.dir, blob);
    absl::Status written = WriteFileAtomically(blob.file, *blob.bytes);
    if (!written.ok()) return written;
    stored.bytes = nullptr;
  }
  absl::MutexLock lock(&mu_);
  blobs_[blob.id] = std::move(stored);
  return blob;
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

void BlobStore::AddLocked(Blob blob) {
  used_bytes_ += blob.size;
  owner_bytes_[blob.owner] += blob.size;
  blobs_[blob.id] = std::move(blob);
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

absl::StatusOr<BlobStore::Blob> BlobStore::Find(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = blobs_.find(id);
  if (it == blobs_.end()) return absl::NotFoundError(absl::StrCat("blob ", id, " not found"));
  return it->second;
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

absl::StatusOr<BlobStore::Blob> BlobStore::Get(const std::string& id) const {
  if (shared_ != nullptr) {  // a job's input: it needs the bytes whole
    auto bytes = std::make_shared<std::string>();
    PgBlobStore::Info info;
    absl::Status read = shared_->Read(
        id,
        [&](std::string_view chunk) {
          bytes->append(chunk);
          return absl::OkStatus();
        },
        &info);
    if (!read.ok()) return read;
    return Blob{id, info.owner, std::move(bytes), info.sha256, info.expire_time, info.size_bytes,
                ""};
  }
  absl::StatusOr<Blob> blob = Find(id);
  if (!blob.ok()) return blob.status();
  if (blob->bytes == nullptr) {  // kept on disk: read it whole
    auto bytes = std::make_shared<std::string>();
    bytes->reserve(static_cast<size_t>(blob->size));
    absl::Status read = ReadFile(*blob, kFilePiece, [&](const Blob&, int64_t, absl::string_view p) {
      bytes->append(p.data(), p.size());
      return absl::OkStatus();
    });
    if (!read.ok()) return read;
    blob->bytes = std::move(bytes);
    return blob;
  }
  if (Sha256(*blob->bytes) != blob->sha256) return Mismatch(id);  // outside mu_: reads it all
  return blob;
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

absl::Status BlobStore::Read(const std::string& id, int64_t max_piece,
                             const PieceSink& sink) const {
  const int64_t step = std::max<int64_t>(1, max_piece);
  auto pieces = [&](const Blob& blob, int64_t offset, absl::string_view bytes) -> absl::Status {
    for (int64_t at = 0; at < static_cast<int64_t>(bytes.size()); at += step) {
      if (absl::Status s = sink(blob, offset + at, bytes.substr(at, step)); !s.ok()) return s;
    }
    return absl::OkStatus();
  };
  if (shared_ == nullptr) {
    absl::StatusOr<Blob> found = Find(id);
    if (!found.ok()) return found.status();
    if (found->bytes == nullptr) return ReadFile(*found, step, sink);
    if (Sha256(*found->bytes) != found->sha256) return Mismatch(id);
    if (found->bytes->empty()) return sink(*found, 0, "");
    return pieces(*found, 0, *found->bytes);
  }
  PgBlobStore::Info info;  // filled in before the first chunk
  auto described = [&] {
    return Blob{id, info.owner, nullptr, info.sha256, info.expire_time, info.size_bytes, ""};
  };
  int64_t offset = 0;
  absl::Status read = shared_->Read(
      id,
      [&](std::string_view chunk) {
        absl::Status s = pieces(described(), offset, absl::string_view(chunk.data(), chunk.size()));
        offset += static_cast<int64_t>(chunk.size());
        return s;
      },
      &info);
  if (read.ok() && info.size_bytes == 0) return sink(described(), 0, "");
  return read;
}

int BlobStore::Sweep(absl::Time now) {
  if (shared_ != nullptr) {
    auto swept = shared_->Sweep();
    return swept.ok() ? static_cast<int>(*swept) : 0;
  }
  std::vector<Blob> expired;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = blobs_.begin(); it != blobs_.end();) {
      if (it->second.expire_time <= now) {
        expired.push_back(std::move(it->second));
        blobs_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  for (const Blob& blob : expired) {
    Release(blob.owner, blob.size);
    if (!blob.file.empty()) std::remove(blob.file.c_str());
  }
  return static_cast<int>(expired.size());
}

int64_t BlobStore::used_bytes() const {
  if (shared_ != nullptr) return shared_->UsedBytes().value_or(0);
  absl::MutexLock lock(&mu_);
  return used_bytes_;
}

}  // namespace solverd::server
