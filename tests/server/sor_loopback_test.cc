// The sor family through the real server: tuner RPCs, TuneSor streaming,
// Matrix Market input from a blob and from --data-root, solverctl tuner and
// the README's example sequence.
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "client/solver_client.h"
#include "test_server.h"

namespace solverd {
namespace {

using client::SolverClient;
using testing::TestServer;

// tridiag(-1, 2.2, -1) of size n in Matrix Market form (lower triangle).
std::string TridiagonalMatrixMarket(int n) {
  std::ostringstream out;
  out << "%%MatrixMarket matrix coordinate real symmetric\n% test\n" << n << " " << n << " "
      << 2 * n - 1 << "\n";
  for (int i = 1; i <= n; ++i) {
    out << i << " " << i << " 2.2\n";
    if (i > 1) out << i << " " << i - 1 << " -1\n";
  }
  return out.str();
}

class SorLoopback : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new std::string(std::filesystem::temp_directory_path() /
                            ("solverd_sor_root_" + std::to_string(getpid())));
    std::filesystem::create_directories(*root_);
    std::ofstream(*root_ + "/tri.mtx") << TridiagonalMatrixMarket(50);
    server_ = new TestServer({"--cpu-workers=2", "--progress-interval-ms=0", "--data-root=" + *root_});
    ASSERT_TRUE(server_->ok()) << server_->error();
  }
  static void TearDownTestSuite() {
    delete server_;
    std::filesystem::remove_all(*root_);
    delete root_;
  }
  void SetUp() override { client_ = std::make_unique<SolverClient>(server_->address()); }

  grpc::Status CreateTuner(const std::string& name, v1::TunerAlgorithm algorithm, v1::Tuner* out) {
    grpc::ClientContext ctx;
    v1::CreateTunerRequest req;
    req.set_name(name);
    req.set_algorithm(algorithm);
    return client_->stub().CreateTuner(&ctx, req, out);
  }

  static TestServer* server_;
  static std::string* root_;
  std::unique_ptr<SolverClient> client_;
};
TestServer* SorLoopback::server_ = nullptr;
std::string* SorLoopback::root_ = nullptr;

TEST_F(SorLoopback, TuneSorStreamsAndTeachesTheTuner) {
  v1::Tuner tuner;
  ASSERT_TRUE(CreateTuner("stream", v1::TUNER_ALGORITHM_TSALLIS_INF, &tuner).ok());
  auto blob = client_->Upload(TridiagonalMatrixMarket(50));
  ASSERT_TRUE(blob.ok()) << blob.status();
  v1::TuneSorRequest req;
  v1::SorSequence* seq = req.mutable_sequence();
  seq->set_tuner("stream");
  for (int s = 0; s < 6; ++s) {
    v1::LinearSystem* sys = seq->add_systems();
    if (s % 2 == 0) sys->set_a_path("tri.mtx"); else sys->set_a_blob_id(blob->blob_id());
    for (int i = 0; i < 50; ++i) sys->mutable_b()->add_values(std::sin(0.1 * i * (s + 1)));
  }
  grpc::ClientContext ctx;
  auto reader = client_->stub().TuneSor(&ctx, req);
  v1::JobEvent e;
  int progress = 0;
  v1::SorSequenceResult result;
  v1::JobState final_state = v1::JOB_STATE_UNSPECIFIED;
  while (reader->Read(&e)) {
    if (e.has_progress()) ++progress;
    if (e.has_result()) result = e.result().sor();
    if (e.has_state()) final_state = e.state().state();
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(final_state, v1::JOB_STATE_SUCCEEDED);
  EXPECT_GT(progress, 0);
  ASSERT_EQ(result.solves_size(), 6);
  for (const v1::SorSolveResult& s : result.solves()) EXPECT_TRUE(s.converged());
  EXPECT_EQ(result.tuner_state().systems(), 6);

  grpc::ClientContext get_ctx;
  v1::GetTunerRequest get;
  get.set_name("stream");
  ASSERT_TRUE(client_->stub().GetTuner(&get_ctx, get, &tuner).ok());
  EXPECT_EQ(tuner.systems(), 6);
  EXPECT_EQ(tuner.arms_size(), 20);
}

TEST_F(SorLoopback, BadRequestsGetClearStatuses) {
  v1::Tuner tuner;
  EXPECT_EQ(CreateTuner("has space", v1::TUNER_ALGORITHM_CHEBCB, &tuner).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(CreateTuner("dup", v1::TUNER_ALGORITHM_CHEBCB, &tuner).ok());
  EXPECT_EQ(CreateTuner("dup", v1::TUNER_ALGORITHM_TSALLIS_INF, &tuner).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);

  v1::JobSpec spec;
  v1::LinearSystem* sys = spec.mutable_sor()->add_systems();
  sys->set_a_path("../escape.mtx");
  sys->mutable_b()->add_values(1);
  auto job = client_->Submit(spec);
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument) << job.status();
  EXPECT_NE(job.status().message().find("sor.systems[0].a_path"), std::string::npos);

  sys->set_a_path("tri.mtx");
  spec.mutable_sor()->set_tuner("missing");
  job = client_->Submit(spec);
  EXPECT_EQ(job.status().code(), absl::StatusCode::kNotFound) << job.status();

  spec.mutable_sor()->clear_tuner();
  job = client_->Submit(spec);  // b has 1 entry, the matrix 50 rows
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(job.status().message().find("sor.systems[0].b"), std::string::npos) << job.status();

  grpc::ClientContext del_ctx;
  v1::DeleteTunerRequest del;
  del.set_name("nope");
  v1::DeleteTunerResponse del_out;
  EXPECT_EQ(client_->stub().DeleteTuner(&del_ctx, del, &del_out).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(SorLoopback, SolverctlTunerAndTheExampleSequence) {
  const std::string server = "--server=" + server_->address();
  std::string out;
  ASSERT_EQ(testing::RunProgram({SOLVERCTL_BINARY, server, "tuner", "create", "example",
                                 "--algorithm=chebcb", "--context-max=1"}, &out), 0) << out;
  const std::string path = std::string(SOLVERD_SOURCE_DIR) + "/examples/sor_sequence.json";
  ASSERT_EQ(testing::RunProgram({SOLVERCTL_BINARY, server, "submit", path, "--watch"}, &out), 0) << out;
  EXPECT_NE(out.find("SUCCEEDED"), std::string::npos) << out;
  ASSERT_EQ(testing::RunProgram({SOLVERCTL_BINARY, server, "tuner", "get", "example"}, &out), 0) << out;
  EXPECT_NE(out.find("\"systems\": \"3\""), std::string::npos) << out;
  ASSERT_EQ(testing::RunProgram({SOLVERCTL_BINARY, server, "tuner", "list"}, &out), 0) << out;
  EXPECT_NE(out.find("example"), std::string::npos);
  EXPECT_EQ(testing::RunProgram({SOLVERCTL_BINARY, server, "tuner", "delete", "example"}, &out), 0) << out;
  EXPECT_NE(testing::RunProgram({SOLVERCTL_BINARY, server, "tuner", "get", "example"}, &out), 0);
  EXPECT_NE(testing::RunProgram({SOLVERCTL_BINARY, server, "tuner", "create", "x",
                                 "--algorithm=ucb"}, &out), 0);
}

TEST(SorRestart, TunerStateSurvivesAServerRestart) {
  const std::string dir = std::filesystem::temp_directory_path() /
                          ("solverd_sor_state_" + std::to_string(getpid()));
  const std::string example = std::string(SOLVERD_SOURCE_DIR) + "/examples/sor_sequence.json";
  std::string out;
  {
    TestServer first({"--state-dir=" + dir});
    ASSERT_TRUE(first.ok()) << first.error();
    const std::string server = "--server=" + first.address();
    ASSERT_EQ(testing::RunProgram({SOLVERCTL_BINARY, server, "tuner", "create", "example"}, &out), 0) << out;
    ASSERT_EQ(testing::RunProgram({SOLVERCTL_BINARY, server, "submit", example, "--watch"}, &out), 0) << out;
    EXPECT_EQ(first.StopWith(SIGTERM, 10000), 0);
  }
  TestServer second({"--state-dir=" + dir});
  ASSERT_TRUE(second.ok()) << second.error();
  ASSERT_EQ(testing::RunProgram({SOLVERCTL_BINARY, "--server=" + second.address(), "tuner", "get",
                                 "example"}, &out), 0) << out;
  EXPECT_NE(out.find("\"systems\": \"3\""), std::string::npos) << out;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace solverd
