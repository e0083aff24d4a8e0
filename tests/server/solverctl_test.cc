// solverctl against the real solverd on loopback ports, run as a user runs
// it: blob upload and download, {"file": PATH} references in a JobSpec and
// an interrupted upload (tests/python/solverctl_test.py has the task
// commands, checked with numpy).
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/solver_client.h"
#include "test_server.h"

namespace solverd {
namespace {

namespace fs = std::filesystem;
using testing::RunProgram;
using testing::TestServer;

std::string TempDir() {
  std::string pattern = (fs::temp_directory_path() / "solverctl-test-XXXXXX").string();
  return mkdtemp(pattern.data());
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream all;
  all << in.rdbuf();
  return all.str();
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(rng());
  return bytes;
}

class Solverctl : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir();
    server_ = std::make_unique<TestServer>(
        std::vector<std::string>{"--state-dir=" + dir_ + "/state"});
    ASSERT_TRUE(server_->ok()) << server_->error();
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(dir_);
  }

  // solverctl `args` against the server; its exit status, output in *out.
  int Run(std::vector<std::string> args, std::string* out) {
    args.insert(args.begin(), {SOLVERCTL_BINARY, "--server=" + server_->address()});
    return RunProgram(args, out);
  }

  // The files the server's blob store holds.
  int StoredBlobFiles() {
    int files = 0;
    for (const auto& entry : fs::recursive_directory_iterator(dir_ + "/state/blobs")) {
      files += entry.is_regular_file();
    }
    return files;
  }

  std::string dir_;
  std::unique_ptr<TestServer> server_;
};

TEST_F(Solverctl, UploadThenDownloadIsByteIdenticalWithProgressLines) {
  const std::string bytes = RandomBytes(20 << 20, 1);
  WriteAll(dir_ + "/in.bin", bytes);
  std::string out;
  ASSERT_EQ(Run({"blob", "upload", dir_ + "/in.bin"}, &out), 0) << out;
  // Not a terminal: a plain line per tenth, then the blob id alone.
  EXPECT_NE(out.find("(50%)"), std::string::npos) << out;
  EXPECT_NE(out.find("20.0 MiB / 20.0 MiB (100%)"), std::string::npos) << out;
  std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  std::string id;
  for (const std::string& line : lines) {
    if (line.rfind("blob-", 0) == 0) id = line;
  }
  ASSERT_FALSE(id.empty()) << out;
  ASSERT_EQ(Run({"blob", "download", id, dir_ + "/out.bin"}, &out), 0) << out;
  EXPECT_TRUE(ReadAll(dir_ + "/out.bin") == bytes);
  EXPECT_FALSE(fs::exists(dir_ + "/out.bin.part"));
}

TEST_F(Solverctl, AFailedTransferLeavesNoFile) {
  std::string out;
  EXPECT_NE(Run({"blob", "download", "blob-nope", dir_ + "/none.bin"}, &out), 0);
  EXPECT_NE(out.find("NOT_FOUND"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir_ + "/none.bin"));
  EXPECT_FALSE(fs::exists(dir_ + "/none.bin.part"));
  EXPECT_NE(Run({"blob", "upload", dir_ + "/missing.bin"}, &out), 0);
  EXPECT_NE(out.find("missing.bin"), std::string::npos) << out;
  EXPECT_NE(Run({"blob", "upload"}, &out), 0);
  EXPECT_NE(out.find("usage: solverctl blob"), std::string::npos) << out;
}

TEST_F(Solverctl, BlobsAreListedAndDeleted) {
  WriteAll(dir_ + "/small.bin", RandomBytes(3000, 3));
  std::string out;
  ASSERT_EQ(Run({"blob", "upload", dir_ + "/small.bin"}, &out), 0) << out;
  const std::string id = out.substr(out.rfind("blob-"), 21);
  ASSERT_EQ(Run({"blob", "list"}, &out), 0) << out;
  EXPECT_NE(out.find(id + "          3000 bytes  expires "), std::string::npos) << out;
  ASSERT_EQ(Run({"blob", "delete", id}, &out), 0) << out;
  EXPECT_EQ(StoredBlobFiles(), 0);
  ASSERT_EQ(Run({"blob", "list"}, &out), 0) << out;
  EXPECT_EQ(out.find(id), std::string::npos) << out;
  EXPECT_NE(Run({"blob", "delete", id}, &out), 0);
  EXPECT_NE(out.find("NOT_FOUND"), std::string::npos) << out;
  EXPECT_NE(Run({"blob", "download", id, dir_ + "/gone.bin"}, &out), 0);
}

TEST_F(Solverctl, AnInterruptedUploadStoresNothing) {
  client::SolverClient client(server_->address());
  grpc::ClientContext ctx;
  v1::BlobInfo info;
  auto writer = client.stub().UploadBlob(&ctx, &info);
  v1::BlobChunk chunk;
  chunk.set_data(RandomBytes(1 << 20, 2));
  ASSERT_TRUE(writer->Write(chunk));
  chunk.set_offset(1 << 20);
  ASSERT_TRUE(writer->Write(chunk));
  ctx.TryCancel();  // as a client killed mid-upload
  EXPECT_FALSE(writer->Finish().ok());
  // The server sees the cancel a moment later; nothing may be left then.
  for (int i = 0; i < 100 && StoredBlobFiles() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(StoredBlobFiles(), 0);
}

TEST_F(Solverctl, FileReferencesInAJobSpecAreUploadedFirst) {
  // A 3 x 4 cost as raw little-endian float64, named from the JSON.
  std::string cost;
  for (int k = 0; k < 12; ++k) {
    const double v = (k % 5) * 0.25;
    cost.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  fs::create_directories(dir_ + "/problem");
  WriteAll(dir_ + "/problem/cost.f64", cost);
  WriteAll(dir_ + "/problem/ot.json",
           R"({"ot": {"cost": {"shape": [3, 4], "dtype": "DTYPE_FLOAT64",
                               "blob_id": {"file": "cost.f64"}}, "reg": 0.1}})");
  std::string out;
  ASSERT_EQ(Run({"submit", dir_ + "/problem/ot.json", "--watch"}, &out), 0) << out;
  EXPECT_NE(out.find("SUCCEEDED"), std::string::npos) << out;
  EXPECT_EQ(StoredBlobFiles(), 1);
  WriteAll(dir_ + "/problem/bad.json",
           R"({"ot": {"cost": {"shape": [3, 4], "blob_id": {"file": "gone.f64"}}, "reg": 0.1}})");
  EXPECT_NE(Run({"submit", dir_ + "/problem/bad.json"}, &out), 0);
  EXPECT_NE(out.find("gone.f64"), std::string::npos) << out;
}

}  // namespace
}  // namespace solverd
