// The shared store's foundations against a real PostgreSQL server (started
// by the test): the libpq connection (password file, parameters and bytes,
// error codes, transactions, reconnecting after the server comes back) and
// the schema migration (once, concurrent, refusing a newer schema), and
// the shared blobs (chunks, cluster-wide quotas, digests, expiry).
#include "server/store/pg_connection.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "pg_test_server.h"
#include "server/blob_store.h"
#include "util/sha256.h"
#include "server/store/pg_blob_store.h"
#include "server/store/pg_schema.h"

namespace solverd::server {
namespace {

class PgStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (testing::PgTestServer::BinDir().empty()) return;
    server_ = new testing::PgTestServer();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (server_ == nullptr) GTEST_SKIP() << "PostgreSQL is not installed (scripts/install-deps.sh)";
    ASSERT_TRUE(server_->ok()) << server_->error();
  }

  PgConnection::Options Options() const {
    PgConnection::Options o;
    o.uri = server_->uri();
    o.password_file = server_->password_file();
    return o;
  }
  std::unique_ptr<PgConnection> Connect() const {
    auto connection = PgConnection::Open(Options());
    EXPECT_TRUE(connection.ok()) << connection.status();
    return connection.ok() ? *std::move(connection) : nullptr;
  }

  static testing::PgTestServer* server_;
};

testing::PgTestServer* PgStoreTest::server_ = nullptr;

TEST_F(PgStoreTest, TextIntegersAndBytesRoundTrip) {
  auto db = Connect();
  ASSERT_NE(db, nullptr);
  std::string bytes("\0\x01\xff\x7f quote' back\\slash", 22);
  auto rows = db->Exec("SELECT $1::text, $2::bigint, $3::bytea, NULL::text",
                       {"it's", int64_t{-42}, PgParam::Bytes(bytes)});
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 1);
  EXPECT_EQ(rows->Text(0, 0), "it's");
  EXPECT_EQ(rows->Int(0, 1), -42);
  EXPECT_EQ(rows->Bytes(0, 2), bytes);
  EXPECT_FALSE(rows->at(0, 3).has_value());
  EXPECT_TRUE(db->connected());
}

TEST_F(PgStoreTest, ErrorsSayWhatWentWrongAndHideThePassword) {
  PgConnection::Options bad = Options();
  bad.password_file.clear();
  bad.uri = "postgres://solverd:wrong-secret@" + server_->uri().substr(19);
  auto refused = PgConnection::Open(bad);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
  EXPECT_NE(refused.status().message().find("password authentication failed"), std::string::npos)
      << refused.status();
  EXPECT_EQ(refused.status().message().find("wrong-secret"), std::string::npos)
      << refused.status();

  bad.uri = "mysql://x";
  EXPECT_EQ(PgConnection::Open(bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad = Options();
  bad.password_file = "/nonexistent/password";
  EXPECT_EQ(PgConnection::Open(bad).status().code(), absl::StatusCode::kInvalidArgument);

  auto db = Connect();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Exec("CREATE TABLE IF NOT EXISTS t_unique(k text PRIMARY KEY)").ok());
  ASSERT_TRUE(db->Exec("INSERT INTO t_unique VALUES($1)", {"a"}).ok());
  EXPECT_EQ(db->Exec("INSERT INTO t_unique VALUES($1)", {"a"}).status().code(),
            absl::StatusCode::kAlreadyExists);
  const absl::Status syntax = db->Exec("SELEC 1").status();
  EXPECT_EQ(syntax.code(), absl::StatusCode::kInternal);
  EXPECT_NE(syntax.message().find("42601"), std::string::npos) << syntax;
}

TEST_F(PgStoreTest, ATransactionCommitsWholeOrNotAtAll) {
  auto db = Connect();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Exec("CREATE TABLE IF NOT EXISTS t_tx(k integer)").ok());
  const absl::Status failed = db->Transaction([](PgTransaction& tx) -> absl::Status {
    if (auto s = tx.Exec("INSERT INTO t_tx VALUES(1)"); !s.ok()) return s.status();
    return absl::AbortedError("changed my mind");
  });
  EXPECT_EQ(failed.message(), "changed my mind");
  EXPECT_EQ(db->Exec("SELECT count(*) FROM t_tx")->Int(0, 0), 0);
  ASSERT_TRUE(db->Transaction([](PgTransaction& tx) {
                  return tx.Exec("INSERT INTO t_tx VALUES(1), (2)").status();
                }).ok());
  EXPECT_EQ(db->Exec("SELECT count(*) FROM t_tx")->Int(0, 0), 2);
}

TEST_F(PgStoreTest, SchemaMigratesOnceEvenFromManyReplicas) {
  std::vector<std::thread> replicas;
  std::vector<absl::StatusOr<int>> found(4, 0);
  for (int r = 0; r < 4; ++r) {
    replicas.emplace_back([&, r] {
      auto db = PgConnection::Open(Options());
      found[r] = db.ok() ? MigratePgSchema(**db) : absl::StatusOr<int>(db.status());
    });
  }
  for (std::thread& t : replicas) t.join();
  int fresh = 0;
  for (const auto& f : found) {
    ASSERT_TRUE(f.ok()) << f.status();
    fresh += *f == 0;
  }
  EXPECT_EQ(fresh, 1);  // one replica created it, the others found it current
  auto db = Connect();
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(*MigratePgSchema(*db), kPgSchemaVersion);
  for (const char* table : {"jobs", "events", "blobs", "blob_chunks", "tuners"}) {
    EXPECT_TRUE(db->Exec(std::string("SELECT count(*) FROM ") + table).ok()) << table;
  }
}

TEST_F(PgStoreTest, ANewerSchemaIsRefused) {
  auto db = Connect();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(MigratePgSchema(*db).ok());
  ASSERT_TRUE(db->Exec("UPDATE solverd_schema SET version = 99").ok());
  const absl::Status refused = MigratePgSchema(*db).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("schema version 99 is newer"), std::string::npos) << refused;
  ASSERT_TRUE(db->Exec("UPDATE solverd_schema SET version = $1",
                       {int64_t{kPgSchemaVersion}}).ok());
}

TEST_F(PgStoreTest, TheConnectionComesBackWithTheServer) {
  auto db = Connect();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(server_->Stop());
  const absl::Status down = db->Exec("SELECT 1").status();
  EXPECT_EQ(down.code(), absl::StatusCode::kUnavailable) << down;
  EXPECT_FALSE(db->connected());
  EXPECT_EQ(db->Exec("SELECT 1").status().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(server_->Start());
  auto up = db->Exec("SELECT 1");
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ(up->Int(0, 0), 1);
  EXPECT_TRUE(db->connected());
}

std::unique_ptr<PgBlobStore> OpenBlobs(const PgConnection::Options& connection,
                                       int64_t quota, int64_t owner_quota,
                                       absl::Duration ttl = absl::Hours(1)) {
  PgBlobStore::Options o;
  o.connection = connection;
  o.quota_bytes = quota;
  o.owner_quota_bytes = owner_quota;
  o.ttl = ttl;
  auto store = PgBlobStore::Open(o);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

std::string ReadAll(PgBlobStore& store, const std::string& id, absl::Status* status) {
  std::string out;
  *status = store.Read(id, [&](std::string_view chunk) {
    out.append(chunk);
    return absl::OkStatus();
  });
  return out;
}

TEST_F(PgStoreTest, BlobsGoInChunksAndComeBackChecked) {
  auto db = Connect();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(MigratePgSchema(*db).ok());
  ASSERT_TRUE(db->Exec("DELETE FROM blobs").ok());
  auto blobs = OpenBlobs(Options(), 1 << 30, 1 << 30);
  ASSERT_NE(blobs, nullptr);
  std::string bytes(3 * PgBlobStore::kChunkBytes + 5, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7 + i / 1000);
  auto put = blobs->Put("alice", bytes, Sha256(bytes));
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->size_bytes, static_cast<int64_t>(bytes.size()));
  auto rows = db->Exec("SELECT count(*) FROM blob_chunks WHERE blob_id = $1", {put->id});
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->Int(0, 0), 4) << "one row per chunk";
  absl::Status read;
  EXPECT_TRUE(ReadAll(*blobs, put->id, &read) == bytes);
  EXPECT_TRUE(read.ok()) << read;
  // A chunk altered in the database is caught as it is read.
  ASSERT_TRUE(db->Exec("UPDATE blob_chunks SET data = set_byte(data, 9, 0) "
                       "WHERE blob_id = $1 AND start = $2",
                       {put->id, int64_t{PgBlobStore::kChunkBytes}}).ok());
  ReadAll(*blobs, put->id, &read);
  EXPECT_EQ(read.code(), absl::StatusCode::kDataLoss) << read;
  EXPECT_EQ(blobs->Stat("blob-none").status().code(), absl::StatusCode::kNotFound);
}

// A job's output staged in --output_root is copied into the shared store
// chunk by chunk, and the staged file removed; a failed copy leaves no
// blob and no file.
TEST_F(PgStoreTest, AStagedOutputIsCopiedIntoTheSharedStore) {
  auto db = Connect();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(MigratePgSchema(*db).ok());
  ASSERT_TRUE(db->Exec("DELETE FROM blobs").ok());
  const std::string dir = ::testing::TempDir() + "/solverd_staged_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  struct RemovedAtEnd {
    ~RemovedAtEnd() { std::filesystem::remove_all(path); }
    std::string path;
  } removed{dir};
  BlobStore store({int64_t{1} << 30, absl::Hours(1), int64_t{1} << 30, "", dir});
  store.ShareThrough(OpenBlobs(Options(), 1 << 30, 3 * PgBlobStore::kChunkBytes));
  const std::string path = store.OutputPath();
  ASSERT_EQ(path.rfind(dir + "/", 0), 0u) << path;
  std::string bytes(2 * PgBlobStore::kChunkBytes + 7, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 13 + i / 4096);
  std::ofstream(path, std::ios::binary) << bytes;
  auto blob = store.Adopt("alice", path, absl::Now());
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_FALSE(std::filesystem::exists(path));
  auto rows = db->Exec("SELECT count(*) FROM blob_chunks WHERE blob_id = $1", {blob->id});
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->Int(0, 0), 3) << "one row per chunk";
  absl::Status read;
  EXPECT_TRUE(ReadAll(*store.shared(), blob->id, &read) == bytes);
  EXPECT_TRUE(read.ok()) << read;

  const std::string over = store.OutputPath();  // over alice's 3-chunk quota now
  std::ofstream(over, std::ios::binary) << bytes;
  EXPECT_EQ(store.Adopt("alice", over, absl::Now()).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(std::filesystem::exists(over));
  rows = db->Exec("SELECT count(*) FROM blobs");
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->Int(0, 0), 1) << "the failed copy's rows are gone";
}

TEST_F(PgStoreTest, BlobQuotasCountEveryReplica) {
  auto db = Connect();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(MigratePgSchema(*db).ok());
  ASSERT_TRUE(db->Exec("DELETE FROM blobs").ok());
  auto a = OpenBlobs(Options(), 1000, 600);
  auto b = OpenBlobs(Options(), 1000, 600);
  ASSERT_TRUE(a != nullptr && b != nullptr);
  const std::string kb(400, 'x');
  ASSERT_TRUE(a->Put("alice", kb, Sha256(kb)).ok());
  const absl::Status owner = b->Put("alice", kb, Sha256(kb)).status();
  EXPECT_EQ(owner.code(), absl::StatusCode::kResourceExhausted) << owner;
  EXPECT_NE(owner.message().find("token alice"), std::string::npos) << owner;
  ASSERT_TRUE(b->Put("bob", kb, Sha256(kb)).ok());
  const absl::Status all = a->Put("carol", kb, Sha256(kb)).status();
  EXPECT_EQ(all.code(), absl::StatusCode::kResourceExhausted) << all;
  EXPECT_NE(all.message().find("across the cluster"), std::string::npos) << all;
  auto left = db->Exec("SELECT count(*) FROM blobs");
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(left->Int(0, 0), 2) << "refused uploads leave nothing behind";
  // An upload in progress counts, and one abandoned goes with its chunks.
  auto id = a->Begin("dave");
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(a->Append(*id, "dave", 0, std::string(150, 'y')).ok());
  EXPECT_EQ(a->Append(*id, "dave", 0, "z").code(), absl::StatusCode::kFailedPrecondition)
      << "a chunk must start where the last ended";
  EXPECT_EQ(b->Put("erin", std::string(100, 'e'), "").status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(a->Stat(*id).status().code(), absl::StatusCode::kNotFound) << "not complete yet";
  a->Abort(*id);
  EXPECT_TRUE(b->Put("erin", std::string(100, 'e'), Sha256(std::string(100, 'e'))).ok());
}

TEST_F(PgStoreTest, ExpiredBlobsAreSweptWithTheirChunks) {
  auto db = Connect();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(MigratePgSchema(*db).ok());
  ASSERT_TRUE(db->Exec("DELETE FROM blobs").ok());
  auto blobs = OpenBlobs(Options(), 1 << 20, 1 << 20, absl::Milliseconds(300));
  ASSERT_NE(blobs, nullptr);
  auto put = blobs->Put("", "short-lived", Sha256("short-lived"));
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_TRUE(blobs->Stat(put->id).ok());
  absl::SleepFor(absl::Milliseconds(400));
  EXPECT_EQ(blobs->Stat(put->id).status().code(), absl::StatusCode::kNotFound);
  auto swept = blobs->Sweep();
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(*swept, 1);
  auto chunks = db->Exec("SELECT count(*) FROM blob_chunks");
  ASSERT_TRUE(chunks.ok());
  EXPECT_EQ(chunks->Int(0, 0), 0);
}

TEST_F(PgStoreTest, EachOwnerListsAndDeletesItsOwnBlobs) {
  auto db = Connect();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(MigratePgSchema(*db).ok());
  ASSERT_TRUE(db->Exec("DELETE FROM blobs").ok());
  auto blobs = OpenBlobs(Options(), 1 << 30, 1 << 30);
  ASSERT_NE(blobs, nullptr);
  const std::string bytes(PgBlobStore::kChunkBytes + 3, 'b');
  auto mine = blobs->Put("alice", bytes, Sha256(bytes));
  auto theirs = blobs->Put("bob", "bob's", Sha256("bob's"));
  ASSERT_TRUE(mine.ok() && theirs.ok());
  auto listed = blobs->List("alice");
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id, mine->id);
  EXPECT_EQ((*listed)[0].size_bytes, static_cast<int64_t>(bytes.size()));
  EXPECT_EQ((*listed)[0].sha256, Sha256(bytes));
  EXPECT_EQ(blobs->Delete(theirs->id, "alice").code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(blobs->Delete(mine->id, "alice").ok());
  EXPECT_EQ(blobs->Stat(mine->id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(blobs->List("alice")->empty());
  auto chunks = db->Exec("SELECT count(*) FROM blob_chunks WHERE blob_id = $1", {mine->id});
  ASSERT_TRUE(chunks.ok());
  EXPECT_EQ(chunks->Int(0, 0), 0) << "its chunks go with it";
  EXPECT_TRUE(blobs->Stat(theirs->id).ok());
}

}  // namespace
}  // namespace solverd::server
