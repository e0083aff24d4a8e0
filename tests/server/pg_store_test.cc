// The shared store's foundations against a real PostgreSQL server (started
// by the test): the libpq connection (password file, parameters and bytes,
// error codes, transactions, reconnecting after the server comes back) and
// the schema migration (once, concurrent, refusing a newer schema).
#include "server/store/pg_connection.h"

#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "pg_test_server.h"
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

}  // namespace
}  // namespace solverd::server
