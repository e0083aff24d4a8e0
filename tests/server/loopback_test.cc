// Loopback tests: the real solverd binary on ephemeral ports, driven by the
// C++ client (and solverctl) as a user would.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "client/demo_problems.h"
#include "client/solver_client.h"
#include "google/protobuf/util/message_differencer.h"
#include "util/sha256.h"
#include "test_server.h"

namespace solverd {
namespace {

using client::SolverClient;
using testing::TestServer;
using testing::WaitForProgress;

v1::JobSpec OtSpec(int n, double eta = 20, uint64_t seed = 1) {
  client::OtDemoOptions o;
  o.n = n;
  o.eta = eta;
  o.seed = seed;
  v1::JobSpec spec;
  *spec.mutable_ot() = client::RandomOtProblem(o);
  return spec;
}

// A job that runs until cancelled (tolerance 0, no iteration limit to speak of).
v1::JobSpec EndlessOtSpec() {
  v1::JobSpec spec = OtSpec(200);
  spec.mutable_ot()->set_tolerance(1e-300);  // never reached: 0 would mean the default
  spec.mutable_ot()->set_max_iterations(int64_t{1} << 40);
  spec.mutable_ot()->set_check_every(1);
  return spec;
}

// Events are equal field by field (map order in the wire bytes may differ).
bool SameEvent(const v1::JobEvent& a, const v1::JobEvent& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

std::vector<v1::JobEvent> WatchAll(SolverClient& c, const std::string& id, int64_t from = 0) {
  std::vector<v1::JobEvent> events;
  auto state = c.Watch(id, from, [&](const v1::JobEvent& e) { events.push_back(e); });
  EXPECT_TRUE(state.ok()) << state.status();
  return events;
}

class Loopback : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new TestServer({"--cpu-workers=2", "--progress-interval-ms=0"});
    ASSERT_TRUE(server_->ok()) << server_->error();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    client_ = std::make_unique<SolverClient>(server_->address());
  }
  static TestServer* server_;
  std::unique_ptr<SolverClient> client_;
};
TestServer* Loopback::server_ = nullptr;

TEST_F(Loopback, SubmitAndWatchToCompletion) {
  auto job = client_->Submit(OtSpec(60));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::JOB_STATE_QUEUED);
  auto events = WatchAll(*client_, job->id());
  ASSERT_GE(events.size(), 4u);
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].number(), static_cast<int64_t>(i));
  EXPECT_EQ(events.front().state().state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(events[1].state().state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(events.back().state().state(), v1::JOB_STATE_SUCCEEDED);
  const v1::JobEvent& result = events[events.size() - 2];
  ASSERT_TRUE(result.has_result());
  EXPECT_EQ(result.result().ot().termination(), v1::OT_TERMINATION_CONVERGED);
  EXPECT_LE(result.result().ot().marginal_error(), 1e-6);
  auto got = client_->Get(job->id());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(got->result().ot().transport_cost(), result.result().ot().transport_cost());
  EXPECT_EQ(got->event_count(), static_cast<int64_t>(events.size()));
  v1::ListJobsRequest list;
  list.set_page_size(1000);
  auto listed = client_->List(list);
  ASSERT_TRUE(listed.ok());
  bool found = false;
  for (const v1::Job& j : listed->jobs()) {
    if (j.id() != job->id()) continue;
    found = true;
    EXPECT_EQ(j.state(), v1::JOB_STATE_SUCCEEDED);
    EXPECT_FALSE(j.has_result());  // lists stay small; GetJob has the result
  }
  EXPECT_TRUE(found);
}

TEST_F(Loopback, TwoWatchersSeeIdenticalEvents) {
  v1::JobSpec spec = OtSpec(150, 100);  // Sinkhorn, checked every step: many events
  spec.mutable_ot()->set_method(v1::OT_METHOD_SINKHORN);
  spec.mutable_ot()->set_check_every(1);
  auto job = client_->Submit(spec);
  ASSERT_TRUE(job.ok());
  std::vector<v1::JobEvent> a, b;
  std::thread ta([&] { a = WatchAll(*client_, job->id()); });
  std::thread tb([&] { b = WatchAll(*client_, job->id()); });
  ta.join();
  tb.join();
  ASSERT_EQ(a.size(), b.size());
  ASSERT_GT(a.size(), 5u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(SameEvent(a[i], b[i])) << "event " << i;
  }
}

TEST_F(Loopback, ReconnectFromEventLosesNothing) {
  v1::JobSpec spec = OtSpec(150, 100);  // Sinkhorn, checked every step: many events
  spec.mutable_ot()->set_method(v1::OT_METHOD_SINKHORN);
  spec.mutable_ot()->set_check_every(1);
  auto job = client_->Submit(spec);
  ASSERT_TRUE(job.ok());
  // Read a few events, drop the connection, resume from the next number.
  std::vector<v1::JobEvent> resumed;
  {
    grpc::ClientContext ctx;
    v1::WatchJobRequest req;
    req.set_job_id(job->id());
    auto reader = client_->stub().WatchJob(&ctx, req);
    v1::JobEvent e;
    while (resumed.size() < 3 && reader->Read(&e)) resumed.push_back(e);
    ctx.TryCancel();
    reader->Finish();
  }
  ASSERT_EQ(resumed.size(), 3u);
  auto rest = WatchAll(*client_, job->id(), resumed.back().number() + 1);
  resumed.insert(resumed.end(), rest.begin(), rest.end());
  auto full = WatchAll(*client_, job->id());
  ASSERT_EQ(resumed.size(), full.size());
  for (size_t i = 0; i < full.size(); ++i) {
    EXPECT_TRUE(SameEvent(resumed[i], full[i])) << "event " << i;
  }
}

TEST_F(Loopback, CancelWhileRunningKeepsBestSoFar) {
  auto job = client_->Submit(EndlessOtSpec());
  ASSERT_TRUE(job.ok());
  WaitForProgress(*client_, job->id());
  auto cancelled = client_->Cancel(job->id());
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  auto events = WatchAll(*client_, job->id());
  EXPECT_EQ(events.back().state().state(), v1::JOB_STATE_CANCELLED);
  auto got = client_->Get(job->id());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->error_code(), static_cast<int>(grpc::StatusCode::CANCELLED));
  EXPECT_EQ(got->result().ot().termination(), v1::OT_TERMINATION_STOPPED);
  EXPECT_GT(got->result().ot().iterations(), 0);
  EXPECT_EQ(got->result().ot().potential_x_size(), 200);
}

TEST_F(Loopback, CancelQueuedAndDeadlineExpiry) {
  // Occupy both CPU lanes, then queue behind them. The second job goes in
  // only once the first runs: queued together, the scheduler could merge
  // them into one batch on one lane, where they would run in turn.
  auto busy1 = client_->Submit(EndlessOtSpec());
  ASSERT_TRUE(busy1.ok());
  WaitForProgress(*client_, busy1->id());
  auto busy2 = client_->Submit(EndlessOtSpec());
  ASSERT_TRUE(busy2.ok());
  WaitForProgress(*client_, busy2->id());
  auto queued = client_->Submit(OtSpec(20));
  v1::JobSpec late = OtSpec(20);
  late.mutable_deadline()->set_nanos(100 * 1000 * 1000);
  auto expiring = client_->Submit(late);
  ASSERT_TRUE(queued.ok() && expiring.ok());
  auto c = client_->Cancel(queued->id());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->state(), v1::JOB_STATE_CANCELLED);
  auto events = WatchAll(*client_, expiring->id());
  EXPECT_EQ(events.back().state().state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(events.back().state().error_code(), static_cast<int>(grpc::StatusCode::DEADLINE_EXCEEDED));
  for (const auto& e : events) EXPECT_NE(e.state().state(), v1::JOB_STATE_RUNNING);
  ASSERT_TRUE(client_->Cancel(busy1->id()).ok());
  ASSERT_TRUE(client_->Cancel(busy2->id()).ok());
  WatchAll(*client_, busy1->id());
  WatchAll(*client_, busy2->id());
}

TEST_F(Loopback, RunningJobStopsAtItsDeadline) {
  v1::JobSpec spec = EndlessOtSpec();
  spec.mutable_deadline()->set_nanos(300 * 1000 * 1000);
  auto job = client_->Submit(spec);
  ASSERT_TRUE(job.ok());
  auto events = WatchAll(*client_, job->id());
  EXPECT_EQ(events.back().state().state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(events.back().state().error_code(), static_cast<int>(grpc::StatusCode::DEADLINE_EXCEEDED));
  auto got = client_->Get(job->id());
  EXPECT_EQ(got->result().ot().termination(), v1::OT_TERMINATION_STOPPED);
}

TEST_F(Loopback, LargeCostMatrixThroughBlobs) {
  const int n = 800;  // 800 x 800 float64 = 5.1 MB, over the 4 MiB message limit
  std::vector<double> cost(n * n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) cost[i * n + j] = std::abs(i - j) / double(n);
  std::string bytes(reinterpret_cast<const char*>(cost.data()), cost.size() * 8);
  auto blob = client_->Upload(bytes);
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_EQ(blob->size_bytes(), static_cast<int64_t>(bytes.size()));
  auto back = client_->Download(blob->blob_id());
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(*back == bytes);
  v1::JobSpec spec;
  v1::Tensor* t = spec.mutable_ot()->mutable_cost();
  t->add_shape(n);
  t->add_shape(n);
  t->set_dtype(v1::DTYPE_FLOAT64);
  t->set_blob_id(blob->blob_id());
  spec.mutable_ot()->set_eta(50);
  spec.mutable_ot()->set_tolerance(1e-4);
  auto job = client_->Submit(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  auto events = WatchAll(*client_, job->id());
  EXPECT_EQ(events.back().state().state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(Loopback, MalformedInputsNameTheField) {
  struct Case {
    std::string name, field;
    std::function<void(v1::JobSpec*)> mutate;
  };
  auto cost_spec = [] {
    v1::JobSpec s;
    s.mutable_ot()->set_eta(10);
    auto* c = s.mutable_ot()->mutable_cost();
    c->add_shape(2);
    c->add_shape(2);
    for (double v : {0.0, 1.0, 1.0, 0.0}) c->add_values(v);
    return s;
  };
  std::vector<Case> cases = {
      {"wrong shape", "ot.cost", [](v1::JobSpec* s) { s->mutable_ot()->mutable_cost()->set_shape(1, 3); }},
      {"negative marginal", "ot.a", [](v1::JobSpec* s) {
         s->mutable_ot()->mutable_a()->add_values(1.5);
         s->mutable_ot()->mutable_a()->add_values(-0.5);
       }},
      {"NaN cost", "ot.cost", [](v1::JobSpec* s) { s->mutable_ot()->mutable_cost()->set_values(2, NAN); }},
      {"empty cost", "ot.cost", [](v1::JobSpec* s) { s->mutable_ot()->mutable_cost()->clear_values(); }},
      {"no problem", "problem", [](v1::JobSpec* s) { s->clear_ot(); }},
      {"no regularisation", "ot.eta", [](v1::JobSpec* s) { s->mutable_ot()->clear_eta(); }},
      {"infinite eta", "ot.eta", [](v1::JobSpec* s) { s->mutable_ot()->set_eta(INFINITY); }},
      {"negative deadline", "deadline", [](v1::JobSpec* s) { s->mutable_deadline()->set_seconds(-1); }},
  };
  for (const Case& c : cases) {
    v1::JobSpec spec = cost_spec();
    c.mutate(&spec);
    auto job = client_->Submit(spec);
    ASSERT_FALSE(job.ok()) << c.name;
    EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_EQ(job.status().message().substr(0, c.field.size() + 1), c.field + ":")
        << c.name << ": " << job.status().message();
  }
  v1::JobSpec spec = cost_spec();
  spec.mutable_ot()->mutable_cost()->clear_values();
  spec.mutable_ot()->mutable_cost()->set_blob_id("blob-nope");
  EXPECT_EQ(client_->Submit(spec).status().code(), absl::StatusCode::kNotFound);
  // The server is still healthy and still solves.
  auto health = client_->Health("", absl::Seconds(5));
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(*health, grpc::health::v1::HealthCheckResponse::SERVING);
  auto ok = client_->Submit(cost_spec());
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(WatchAll(*client_, ok->id()).back().state().state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(Loopback, UnknownJobsAndBlobsAreNotFound) {
  EXPECT_EQ(client_->Get("job-nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->Cancel("job-nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->Watch("job-nope", 0, [](const v1::JobEvent&) {}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->Download("blob-nope").status().code(), absl::StatusCode::kNotFound);
  v1::ListJobsRequest bad;
  bad.set_page_token("not-a-token");
  EXPECT_EQ(client_->List(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(Loopback, SolveOtStreamsTheWholeJob) {
  grpc::ClientContext ctx;
  v1::SolveOtRequest req;
  *req.mutable_problem() = OtSpec(40).ot();
  auto reader = client_->stub().SolveOt(&ctx, req);
  std::vector<v1::JobEvent> events;
  v1::JobEvent e;
  while (reader->Read(&e)) events.push_back(e);
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().state().state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(Loopback, BlobsCarryTheirSha256BothWays) {
  const std::string bytes(3 << 20, 'q');  // several chunks
  const std::string digest = Sha256(bytes);
  auto wrong = client_->Upload(bytes, Sha256("something else"));
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kDataLoss) << wrong.status();
  auto blob = client_->Upload(bytes, digest);
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_EQ(blob->sha256(), digest);
  grpc::ClientContext ctx;
  v1::DownloadBlobRequest req;
  req.set_blob_id(blob->blob_id());
  auto reader = client_->stub().DownloadBlob(&ctx, req);
  v1::BlobChunk first;
  ASSERT_TRUE(reader->Read(&first));
  EXPECT_EQ(first.sha256(), digest);
  ctx.TryCancel();
  (void)reader->Finish();
}

// The events a convenience RPC streams, and how the stream ended.
template <typename Reader>
grpc::Status ReadAll(Reader reader, std::vector<v1::JobEvent>* events) {
  v1::JobEvent e;
  while (reader->Read(&e)) events->push_back(e);
  return reader->Finish();
}

TEST_F(Loopback, SolveDmmvStreamsTheWholeJobWithItsPriority) {
  grpc::ClientContext ctx;
  v1::SolveDmmvRequest req;
  v1::FirDesign* fir = req.mutable_problem()->mutable_fir();
  fir->set_order(8);
  fir->add_edges(0.2);
  fir->add_edges(0.3);
  fir->set_bits(6);
  req.mutable_problem()->set_max_outer_iterations(2);
  req.set_priority(3);
  std::vector<v1::JobEvent> events;
  ASSERT_TRUE(ReadAll(client_->stub().SolveDmmv(&ctx, req), &events).ok());
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().state().state(), v1::JOB_STATE_SUCCEEDED)
      << events.back().state().error_message();
  bool has_taps = false;
  for (const v1::JobEvent& e : events) has_taps |= e.result().dmmv().fir().taps_size() > 0;
  EXPECT_TRUE(has_taps);
  auto job = client_->Get(events.back().job_id());
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->family(), "dmmv");
  EXPECT_EQ(job->priority(), 3);
}

TEST_F(Loopback, ConvenienceRpcsNameTheBadField) {
  grpc::ClientContext dmmv_ctx;
  std::vector<v1::JobEvent> events;
  const grpc::Status dmmv =
      ReadAll(client_->stub().SolveDmmv(&dmmv_ctx, v1::SolveDmmvRequest()), &events);
  EXPECT_EQ(dmmv.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(dmmv.error_message().rfind("dmmv.source:", 0), 0u) << dmmv.error_message();
  grpc::ClientContext quant_ctx;
  const grpc::Status quant =
      ReadAll(client_->stub().Quantize(&quant_ctx, v1::QuantizeRequest()), &events);
  EXPECT_EQ(quant.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(quant.error_message().rfind("quant.model:", 0), 0u) << quant.error_message();
  EXPECT_TRUE(events.empty());
}

// Sum of the samples of `metric` whose labels contain `label`.
double Scrape(int port, const std::string& metric, const std::string& label) {
  double total = 0;
  for (absl::string_view line : absl::StrSplit(testing::HttpGet(port, "/metrics"), '\n')) {
    if (!absl::StartsWith(line, metric + "{") && !absl::StartsWith(line, metric + " ")) continue;
    if (line.find(label) == absl::string_view::npos) continue;
    double v = 0;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &v)) total += v;
  }
  return total;
}

TEST_F(Loopback, MetricsMoveWithJobs) {
  const int port = server_->metrics_port();
  const double before = Scrape(port, "solverd_jobs_finished_total", "status=\"succeeded\"");
  const double submitted = Scrape(port, "solverd_jobs_submitted_total", "family=\"ot\"");
  for (int i = 0; i < 3; ++i) {
    auto job = client_->Submit(OtSpec(30, 20, i));
    ASSERT_TRUE(job.ok());
    WatchAll(*client_, job->id());
  }
  EXPECT_EQ(Scrape(port, "solverd_jobs_finished_total", "status=\"succeeded\""), before + 3);
  EXPECT_EQ(Scrape(port, "solverd_jobs_submitted_total", "family=\"ot\""), submitted + 3);
  EXPECT_GT(Scrape(port, "solverd_solver_iterations_total", "family=\"ot\""), 0);
  EXPECT_GE(Scrape(port, "solverd_job_duration_seconds_count", "family=\"ot\""), 3);
  EXPECT_GE(Scrape(port, "solverd_queue_wait_seconds_count", "family=\"ot\""), 3);
  EXPECT_GE(Scrape(port, "solverd_batch_size_count", "family=\"ot\""), 3);
  const std::string all = testing::HttpGet(port, "/metrics");
  for (const char* name : {"solverd_queue_depth", "solverd_running_jobs",
                           "solverd_device_memory_used_bytes", "solverd_build_info"}) {
    EXPECT_NE(all.find(name), std::string::npos) << name;
  }
}

TEST_F(Loopback, SolverctlDemoAndHealthExitStatus) {
  std::string out;
  const std::string server = "--server=" + server_->address();
  EXPECT_EQ(testing::RunProgram({SOLVERCTL_BINARY, server, "health"}, &out), 0) << out;
  EXPECT_NE(out.find("SERVING"), std::string::npos);
  EXPECT_EQ(testing::RunProgram({SOLVERCTL_BINARY, server, "demo", "ot", "--n", "80"}, &out), 0) << out;
  EXPECT_NE(out.find("SUCCEEDED"), std::string::npos) << out;
  EXPECT_NE(testing::RunProgram({SOLVERCTL_BINARY, server, "get", "job-nope"}, &out), 0);
  EXPECT_NE(testing::RunProgram({SOLVERCTL_BINARY, "--server=127.0.0.1:1", "--timeout=1s", "health"}, &out), 0);
}

// README's problem files must keep working.
TEST_F(Loopback, ExampleProblemFilesSolve) {
  for (const char* name : {"ot_small.json", "ot_points.json", "ot_batch.json", "dmmv_fir.json",
                           "dmmv_direct.json"}) {
    std::string out;
    const std::string path = std::string(SOLVERD_SOURCE_DIR) + "/examples/" + name;
    EXPECT_EQ(testing::RunProgram({SOLVERCTL_BINARY, "--server=" + server_->address(), "submit",
                                   path, "--watch"}, &out), 0) << name << ": " << out;
    EXPECT_NE(out.find("SUCCEEDED"), std::string::npos) << out;
  }
}

TEST(Batching, SmallOtJobsShareALaunchAndKeepTheirOwnResults) {
  TestServer server({"--cpu-workers=1", "--solver-threads=2", "--max-batch=8",
                     "--max-queue-delay-us=200000"});
  ASSERT_TRUE(server.ok()) << server.error();
  SolverClient c(server.address());
  std::vector<std::string> ids;
  for (int i = 0; i < 8; ++i) {
    auto job = c.Submit(OtSpec(32, 20, 100 + i));
    ASSERT_TRUE(job.ok());
    ids.push_back(job->id());
  }
  std::set<double> costs;
  for (const auto& id : ids) {
    auto events = WatchAll(c, id);
    ASSERT_EQ(events.back().state().state(), v1::JOB_STATE_SUCCEEDED);
    costs.insert(events[events.size() - 2].result().ot().transport_cost());
    for (const auto& e : events) EXPECT_EQ(e.job_id(), id);
  }
  EXPECT_EQ(costs.size(), 8u);  // eight different problems, eight answers
  // Fewer launches than jobs: the batch-size histogram counts launches.
  const int port = server.metrics_port();
  EXPECT_LT(Scrape(port, "solverd_batch_size_count", "family=\"ot\""), 8);
  EXPECT_EQ(Scrape(port, "solverd_batch_size_sum", "family=\"ot\""), 8);
}

TEST(Shutdown, GracefulStopAndPortConflict) {
  TestServer server({"--cpu-workers=1", "--grace-period=300ms"});
  ASSERT_TRUE(server.ok()) << server.error();
  // A second instance on the same port must fail loudly.
  std::string out;
  int status = testing::RunProgram({SOLVERD_BINARY, "--listen=127.0.0.1:" + std::to_string(server.grpc_port()),
                                    "--metrics-port=0"}, &out);
  EXPECT_NE(status, 0) << out;
  EXPECT_NE(out.find("cannot listen"), std::string::npos) << out;

  SolverClient c(server.address());
  auto running = c.Submit(EndlessOtSpec());
  auto queued = c.Submit(OtSpec(20));
  ASSERT_TRUE(running.ok() && queued.ok());
  WaitForProgress(c, running->id());
  std::vector<v1::JobEvent> events;
  std::atomic<bool> watching{false};
  std::thread watcher([&] {
    auto state = c.Watch(running->id(), 0, [&](const v1::JobEvent& e) {
      events.push_back(e);
      watching = true;
    });
    EXPECT_TRUE(state.ok()) << state.status();
  });
  // The stream must be open before the signal: under a loaded CI machine a
  // watch that had not yet reached the server was refused by the shutdown.
  for (int i = 0; i < 1000 && !watching; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(server.StopWith(SIGTERM, 10000), 0);  // exits 0 after the grace period
  watcher.join();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().state().state(), v1::JOB_STATE_CANCELLED);
}

}  // namespace
}  // namespace solverd
