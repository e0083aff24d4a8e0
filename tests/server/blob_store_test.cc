// Blobs and their SHA-256: an upload is checked against the digest the
// client sent and stores nothing when it differs; every read checks the
// stored bytes against the digest, in memory and from --state-dir files.
#include "server/blob_store.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "server/blob_upload.h"
#include "util/sha256.h"

namespace solverd::server {
namespace {

namespace fs = std::filesystem;

// A fresh folder, removed with what it holds even when the test fails.
struct TempDir {
  explicit TempDir(const std::string& prefix)
      : path((fs::temp_directory_path() / (prefix + std::to_string(::getpid()))).string()) {
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  const std::string path;
};

TEST(Sha256Test, KnownDigests) {
  EXPECT_EQ(absl::BytesToHexString(Sha256("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(absl::BytesToHexString(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256Hasher pieces;
  pieces.Update("a");
  pieces.Update("bc");
  EXPECT_EQ(pieces.Finish(), Sha256("abc"));
}

TEST(BlobUploadTest, AMatchingDigestStoresTheBlobWithIt) {
  BlobStore store({1 << 20, absl::Hours(1)});
  BlobUpload upload(store, "");
  ASSERT_TRUE(upload.Append(0, "hello ").ok());
  ASSERT_TRUE(upload.Append(6, "world").ok());
  ASSERT_TRUE(upload.Expect(Sha256("hello world")).ok());
  auto blob = upload.Finish(absl::Now());
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_EQ(blob->sha256, Sha256("hello world"));
  auto read = store.Get(blob->id);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read->bytes, "hello world");
}

TEST(BlobUploadTest, AnotherDigestStoresNothing) {
  BlobStore store({1 << 20, absl::Hours(1)});
  {
    BlobUpload upload(store, "");
    ASSERT_TRUE(upload.Append(0, "hello world").ok());
    ASSERT_TRUE(upload.Expect(Sha256("hello there")).ok());
    const absl::Status lost = upload.Finish(absl::Now()).status();
    EXPECT_EQ(lost.code(), absl::StatusCode::kDataLoss);
    EXPECT_NE(lost.message().find("nothing was stored"), std::string::npos) << lost;
  }
  EXPECT_EQ(store.used_bytes(), 0);  // the reservation is back

  BlobUpload bad(store, "");
  EXPECT_EQ(bad.Expect("short").code(), absl::StatusCode::kInvalidArgument);
  BlobUpload twice(store, "");
  ASSERT_TRUE(twice.Expect(Sha256("a")).ok());
  EXPECT_EQ(twice.Expect(Sha256("b")).code(), absl::StatusCode::kInvalidArgument);
}

// With a blob directory an upload goes to a file chunk by chunk: stored,
// it is kept on disk only; refused or abandoned, it leaves no file.
TEST(BlobUploadTest, UploadsGoToDiskWithADirectory) {
  const TempDir temp("solverd_upload_");
  const std::string& dir = temp.path;
  BlobStore store({1 << 20, absl::Hours(1), 1 << 20, dir});
  std::string id;
  {
    BlobUpload upload(store, "bob");
    ASSERT_TRUE(upload.Append(0, "hello ").ok());
    ASSERT_TRUE(upload.Append(6, "world").ok());
    auto blob = upload.Finish(absl::Now());
    ASSERT_TRUE(blob.ok()) << blob.status();
    EXPECT_EQ(blob->bytes, nullptr);
    EXPECT_EQ(blob->sha256, Sha256("hello world"));
    id = blob->id;
  }
  auto path = store.VerifiedFile(id);
  ASSERT_TRUE(path.ok()) << path.status();
  std::ifstream file(*path);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(file), {}), "hello world");
  EXPECT_EQ(*store.Get(id)->bytes, "hello world");
  {
    BlobUpload refused(store, "bob");
    ASSERT_TRUE(refused.Append(0, "hello").ok());
    ASSERT_TRUE(refused.Expect(Sha256("other")).ok());
    EXPECT_EQ(refused.Finish(absl::Now()).status().code(), absl::StatusCode::kDataLoss);
    BlobUpload abandoned(store, "bob");
    ASSERT_TRUE(abandoned.Append(0, "half").ok());
  }
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  EXPECT_EQ(store.used_bytes(), 11);
  EXPECT_EQ(BlobStore({1 << 20, absl::Hours(1)}).VerifiedFile(id).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(BlobStoreTest, ChangedBytesAreDataLossOnRead) {
  BlobStore store({1 << 20, absl::Hours(1)});
  ASSERT_TRUE(store.Reserve("", 4).ok());
  auto blob = store.Put("", "abcd", absl::Now());
  ASSERT_TRUE(blob.ok());
  // Memory that changed under the store (what the digest is there to catch).
  const_cast<std::string&>(*blob->bytes)[0] = 'x';
  EXPECT_EQ(store.Get(blob->id).status().code(), absl::StatusCode::kDataLoss);
}

TEST(BlobStoreTest, AFileThatChangedOnDiskIsSkippedAtLoad) {
  const TempDir temp("solverd_blobs_");
  const std::string& dir = temp.path;
  std::string kept_id, changed_id;
  {
    BlobStore store({1 << 20, absl::Hours(1), 1 << 20, dir});
    ASSERT_TRUE(store.Reserve("", 8).ok());
    kept_id = store.Put("", "kept", absl::Now())->id;
    changed_id = store.Put("", "good", absl::Now())->id;
  }
  for (const auto& file : fs::directory_iterator(dir)) {
    if (file.path().filename().string().rfind(changed_id, 0) == 0) {
      std::ofstream(file.path(), std::ios::trunc) << "evil";
    }
  }
  BlobStore loaded({1 << 20, absl::Hours(1), 1 << 20, dir});
  const std::vector<std::string> warnings = loaded.Load(absl::Now());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("no longer match their SHA-256"), std::string::npos) << warnings[0];
  EXPECT_TRUE(loaded.Get(kept_id).ok());
  EXPECT_EQ(loaded.Get(changed_id).status().code(), absl::StatusCode::kNotFound);
}

std::string ReadAll(const BlobStore& store, const std::string& id, absl::Status* status) {
  std::string out;
  *status = store.Read(id, 3, [&](const BlobStore::Blob& blob, int64_t offset,
                                  absl::string_view piece) {
    EXPECT_EQ(offset, static_cast<int64_t>(out.size()));
    EXPECT_EQ(blob.size, 10);
    out.append(piece.data(), piece.size());
    return absl::OkStatus();
  });
  return out;
}

// A job's output written to OutputPath() becomes a blob kept on disk only:
// streamed by Read() with its digest checked, loaded whole by Get(), back
// after a restart without being read into memory, gone when it expires.
TEST(BlobStoreTest, AnAdoptedFileIsStreamedFromDisk) {
  const TempDir temp("solverd_adopt_");
  const std::string& dir = temp.path;
  EXPECT_EQ(BlobStore({1 << 20, absl::Hours(1)}).OutputPath(), "");  // in memory: none
  BlobStore store({1 << 20, absl::Hours(1), 1 << 20, dir});
  const std::string path = store.OutputPath();
  ASSERT_EQ(path.rfind(dir, 0), 0u) << path;
  std::ofstream(path) << "0123456789";
  ASSERT_TRUE(store.Reserve("alice", 10).ok());
  auto blob = store.Adopt("alice", path, absl::Now());
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_EQ(blob->bytes, nullptr);
  EXPECT_EQ(blob->sha256, Sha256("0123456789"));
  EXPECT_FALSE(fs::exists(path));
  absl::Status read;
  EXPECT_EQ(ReadAll(store, blob->id, &read), "0123456789");
  EXPECT_TRUE(read.ok()) << read;
  EXPECT_EQ(*store.Get(blob->id)->bytes, "0123456789");
  EXPECT_EQ(store.used_bytes(), 10);

  const std::string torn = store.OutputPath();  // a job's output when the server died
  std::ofstream(torn) << "partial";
  BlobStore restarted({1 << 20, absl::Hours(1), 1 << 20, dir});
  EXPECT_TRUE(restarted.Load(absl::Now()).empty());
  EXPECT_FALSE(fs::exists(torn));
  EXPECT_EQ(ReadAll(restarted, blob->id, &read), "0123456789");
  EXPECT_EQ(restarted.used_bytes(), 10);
  for (const auto& file : fs::directory_iterator(dir)) {  // changed after the restart
    std::ofstream(file.path(), std::ios::trunc) << "0123456780";
  }
  ReadAll(restarted, blob->id, &read);
  EXPECT_EQ(read.code(), absl::StatusCode::kDataLoss) << read;
  EXPECT_EQ(restarted.Get(blob->id).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(restarted.Sweep(absl::Now() + absl::Hours(2)), 1);
  EXPECT_EQ(restarted.used_bytes(), 0);
  EXPECT_TRUE(fs::is_empty(dir));
  EXPECT_EQ(store.Adopt("alice", dir + "/missing", absl::Now()).status().code(),
            absl::StatusCode::kInternal);
}

// --output_root without --state_dir: outputs (and uploads) are files there,
// served from disk and back after a restart, while the blob directory
// stays unset.
TEST(BlobStoreTest, OutputsGoToTheOutputRoot) {
  const TempDir temp("solverd_output_root_");
  BlobStore::Options options{1 << 20, absl::Hours(1), 1 << 20, "", temp.path};
  BlobStore store(options);
  EXPECT_FALSE(store.KeepsBlobsOnDisk());
  ASSERT_TRUE(store.WritesOutputsToDisk());
  const std::string path = store.OutputPath();
  ASSERT_EQ(path.rfind(temp.path + "/", 0), 0u) << path;
  std::ofstream(path) << "outputs!!!";
  ASSERT_TRUE(store.Reserve("", 10).ok());
  auto blob = store.Adopt("", path, absl::Now());
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_EQ(blob->file.rfind(temp.path + "/", 0), 0u) << blob->file;
  EXPECT_EQ(*store.VerifiedFile(blob->id), blob->file);
  absl::Status read;
  EXPECT_EQ(ReadAll(store, blob->id, &read), "outputs!!!");
  EXPECT_TRUE(read.ok()) << read;

  BlobUpload upload(store, "bob");
  ASSERT_TRUE(upload.Append(0, "uploaded!!").ok());
  auto uploaded = upload.Finish(absl::Now());
  ASSERT_TRUE(uploaded.ok()) << uploaded.status();
  EXPECT_EQ(uploaded->bytes, nullptr) << "kept as a file, not in memory";

  BlobStore restarted(options);
  EXPECT_TRUE(restarted.Load(absl::Now()).empty());
  EXPECT_EQ(ReadAll(restarted, blob->id, &read), "outputs!!!");
  EXPECT_EQ(ReadAll(restarted, uploaded->id, &read), "uploaded!!");
  EXPECT_EQ(restarted.used_bytes(), 20);
  EXPECT_EQ(restarted.Sweep(absl::Now() + absl::Hours(2)), 2);
  EXPECT_TRUE(fs::is_empty(temp.path));
  EXPECT_FALSE(BlobStore({1 << 20, absl::Hours(1)}).WritesOutputsToDisk());
}

}  // namespace
}  // namespace solverd::server
