// Replicas on one shared store (--store=postgres://...): a real PostgreSQL
// server (PgTestServer) and real solverd processes (TestServer). Any
// replica serves any job; a replica killed outright loses nothing; one
// idempotency key gives one job across replicas; a blob uploaded to one is
// read by a job on another and downloaded from a third; the database going
// away and coming back crashes nothing and loses no acknowledged job.
#include <signal.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "client/demo_problems.h"
#include "client/solver_client.h"
#include "pg_test_server.h"
#include "quant/formats/safetensors.h"
#include "server/store/pg_connection.h"
#include "test_server.h"

namespace solverd {
namespace {

using client::SolverClient;
using testing::PgTestServer;
using testing::TestServer;
using testing::WaitForProgress;
using Health = grpc::health::v1::HealthCheckResponse;

v1::JobSpec OtSpec(int n, uint64_t seed = 1) {
  client::OtDemoOptions o;
  o.n = n;
  o.eta = 20;
  o.seed = seed;
  v1::JobSpec spec;
  *spec.mutable_ot() = client::RandomOtProblem(o);
  return spec;
}

// Runs `iterations` Sinkhorn steps (never converging first).
v1::JobSpec KeyedSpec(int round, int key) {
  v1::JobSpec spec = OtSpec(150, 1000 + key);
  spec.set_idempotency_key(absl::StrCat("order-", round, "-", key));
  return spec;
}

v1::JobSpec LongOtSpec(int64_t iterations) {
  v1::JobSpec spec = OtSpec(200);
  spec.mutable_ot()->set_tolerance(1e-300);  // never reached: 0 would mean the default
  spec.mutable_ot()->set_max_iterations(iterations);
  spec.mutable_ot()->set_check_every(1);
  return spec;
}

std::vector<v1::JobEvent> WatchAll(SolverClient& c, const std::string& id, int64_t from = 0) {
  std::vector<v1::JobEvent> events;
  auto state = c.Watch(id, from, [&](const v1::JobEvent& e) { events.push_back(e); }, 50);
  EXPECT_TRUE(state.ok()) << state.status();
  return events;
}

int TerminalEvents(const std::vector<v1::JobEvent>& events) {
  int n = 0;
  for (const v1::JobEvent& e : events) {
    n += e.has_state() && (e.state().state() == v1::JOB_STATE_SUCCEEDED ||
                           e.state().state() == v1::JOB_STATE_FAILED ||
                           e.state().state() == v1::JOB_STATE_CANCELLED);
  }
  return n;
}

void ExpectNumberedFromZero(const std::vector<v1::JobEvent>& events) {
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(events[i].number(), static_cast<int64_t>(i)) << "a gap or a repeat";
  }
}

class Cluster : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (PgTestServer::BinDir().empty()) return;
    db_ = new PgTestServer();
    if (!db_->ok()) return;
    for (int i = 0; i < 3; ++i) replicas_.push_back(StartReplica().release());
  }
  static void TearDownTestSuite() {
    for (TestServer* r : replicas_) delete r;
    replicas_.clear();
    std::filesystem::remove_all(OutputRoots());
    delete db_;
    db_ = nullptr;
  }
  void SetUp() override {
    if (db_ == nullptr) GTEST_SKIP() << "PostgreSQL is not installed (scripts/install-deps.sh)";
    ASSERT_TRUE(db_->ok()) << db_->error();
    for (TestServer* r : replicas_) {
      ASSERT_TRUE(r->ok()) << r->error();
      clients_.push_back(std::make_unique<SolverClient>(r->address()));
    }
  }
  // Each replica stages its outputs in a folder of its own, as pods do.
  static std::string OutputRoots() {
    return ::testing::TempDir() + "/solverd_cluster_outputs_" + std::to_string(::getpid());
  }
  static std::unique_ptr<TestServer> StartReplica() {
    static int started = 0;
    return std::make_unique<TestServer>(std::vector<std::string>{
        "--store=" + db_->uri(), "--store_password_file=" + db_->password_file(),
        "--lease_seconds=2", "--cpu-workers=2", "--max_batch=4",
        "--output_root=" + OutputRoots() + "/" + std::to_string(started++)});
  }
  void TearDown() override {
    if (!HasFailure()) return;
    for (size_t i = 0; i < replicas_.size(); ++i) {
      std::printf("--- replica %zu's log:\n%s\n", i, replicas_[i]->log().c_str());
    }
  }
  SolverClient& A() { return *clients_[0]; }
  SolverClient& B() { return *clients_[1]; }
  SolverClient& C() { return *clients_[2]; }

  static PgTestServer* db_;
  static std::vector<TestServer*> replicas_;
  std::vector<std::unique_ptr<SolverClient>> clients_;
};
PgTestServer* Cluster::db_ = nullptr;
std::vector<TestServer*> Cluster::replicas_;

TEST_F(Cluster, AnyReplicaWatchesGetsAndCancelsAnyJob) {
  auto job = A().Submit(LongOtSpec(int64_t{1} << 40));
  ASSERT_TRUE(job.ok()) << job.status();
  WaitForProgress(B(), job->id());  // B watches A's job
  auto running = C().Get(job->id());
  ASSERT_TRUE(running.ok()) << running.status();
  EXPECT_EQ(running->state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(running->attempt(), 1);

  const absl::Time asked = absl::Now();
  ASSERT_TRUE(B().Cancel(job->id()).ok());
  auto events = WatchAll(C(), job->id());
  const absl::Duration took = absl::Now() - asked;
  EXPECT_LT(took, absl::Seconds(1)) << "a cancel reaches the running replica within a second";
  ExpectNumberedFromZero(events);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().state().state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(TerminalEvents(events), 1);
  auto ended = A().Get(job->id());
  ASSERT_TRUE(ended.ok());
  EXPECT_EQ(ended->state(), v1::JOB_STATE_CANCELLED);
  EXPECT_TRUE(ended->has_result()) << "the best answer so far is kept";
  EXPECT_EQ(ended->event_count(), static_cast<int64_t>(events.size()));

  v1::ListJobsRequest list;
  list.set_page_size(1000);
  auto listed = B().List(list);
  ASSERT_TRUE(listed.ok()) << listed.status();
  bool found = false;
  for (const v1::Job& j : listed->jobs()) found |= j.id() == job->id();
  EXPECT_TRUE(found);
  EXPECT_EQ(C().Get("job-nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(Cluster, AJobThatEndedHereReadsAsTheStoreHoldsIt) {
  // A runs what it is sent while it has room, and keeps it once stored.
  for (int k = 0; k < 8; ++k) {
    auto job = A().Submit(OtSpec(40, 10 + k));
    ASSERT_TRUE(job.ok()) << job.status();
    auto events = WatchAll(A(), job->id());
    ASSERT_FALSE(events.empty());
    auto here = A().Get(job->id());
    auto there = B().Get(job->id());
    ASSERT_TRUE(here.ok() && there.ok()) << here.status() << there.status();
    EXPECT_EQ(here->state(), v1::JOB_STATE_SUCCEEDED);
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*here, *there))
        << "A:\n" << here->DebugString() << "B:\n" << there->DebugString();
    auto from_b = WatchAll(B(), job->id());
    ASSERT_EQ(from_b.size(), events.size());
    for (size_t e = 0; e < events.size(); ++e) {
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(events[e], from_b[e]));
    }
  }
}

TEST_F(Cluster, WatchesOverSeveralReplicasResumeWhenOneDiesAndOneShutsDown) {
  auto killed = StartReplica();
  auto drained = std::make_unique<TestServer>(std::vector<std::string>{
      "--store=" + db_->uri(), "--store_password_file=" + db_->password_file(),
      "--lease_seconds=2", "--cpu-workers=2", "--grace_period=1s"});
  ASSERT_TRUE(killed->ok()) << killed->error();
  ASSERT_TRUE(drained->ok()) << drained->error();
  // One channel over three replicas, as dns:/// over a headless Service.
  const std::string target = "ipv4:" + killed->address() + "," + drained->address() + "," +
                             replicas_[1]->address();
  SolverClient spread(target);
  auto job = spread.Submit(LongOtSpec(8000));
  ASSERT_TRUE(job.ok()) << job.status();
  // Round-robin puts two of the six watches on each replica.
  constexpr int kWatches = 6;
  std::vector<std::vector<v1::JobEvent>> seen(kWatches);
  std::vector<absl::Status> ended(kWatches);
  std::vector<std::thread> watchers;
  for (int w = 0; w < kWatches; ++w) {
    watchers.emplace_back([&, w] {
      auto state = spread.Watch(job->id(), 0, [&](const v1::JobEvent& e) { seen[w].push_back(e); },
                                /*max_reconnects=*/20);
      ended[w] = state.status();
      if (state.ok() && *state != v1::JOB_STATE_SUCCEEDED) {
        ended[w] = absl::InternalError(v1::JobState_Name(*state));
      }
    });
  }
  WaitForProgress(B(), job->id());
  ASSERT_EQ(killed->StopWith(SIGKILL, 5000), 128 + SIGKILL);
  ASSERT_EQ(drained->StopWith(SIGTERM, 20000), 0);
  for (std::thread& t : watchers) t.join();
  for (int w = 0; w < kWatches; ++w) {
    EXPECT_TRUE(ended[w].ok()) << "watch " << w << ": " << ended[w];
    ExpectNumberedFromZero(seen[w]);
    EXPECT_EQ(TerminalEvents(seen[w]), 1) << "watch " << w;
  }
}

// A replica that stops gracefully hands its running job back, and another
// runs it again without waiting for the lease.
TEST_F(Cluster, ADrainedReplicasRunningJobIsRunAgainElsewhere) {
  auto drained = std::make_unique<TestServer>(std::vector<std::string>{
      "--store=" + db_->uri(), "--store_password_file=" + db_->password_file(),
      "--lease_seconds=30", "--cpu-workers=2", "--grace_period=0s"});
  ASSERT_TRUE(drained->ok()) << drained->error();
  SolverClient d(drained->address());
  auto job = d.Submit(LongOtSpec(6000));
  ASSERT_TRUE(job.ok()) << job.status();
  WaitForProgress(d, job->id());
  ASSERT_EQ(drained->StopWith(SIGTERM, 20000), 0);
  absl::StatusOr<v1::Job> rerun;
  for (int i = 0; i < 100; ++i) {
    rerun = B().Get(job->id());
    ASSERT_TRUE(rerun.ok()) << rerun.status();
    if (rerun->attempt() == 2) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_EQ(rerun->attempt(), 2) << "not claimed again within 10 s (the lease is 30 s)";
  auto events = WatchAll(B(), job->id());
  ExpectNumberedFromZero(events);
  EXPECT_EQ(TerminalEvents(events), 1);
  EXPECT_EQ(events.back().state().state(), v1::JOB_STATE_SUCCEEDED);
  auto ended = C().Get(job->id());
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_EQ(ended->attempt(), 2) << "run again, well inside the 30 s lease";
}

TEST_F(Cluster, OneIdempotencyKeyAtTwoReplicasGivesOneJob) {
  for (int round = 0; round < 8; ++round) {
    v1::JobSpec spec = OtSpec(40, round);
    spec.set_idempotency_key("key-" + std::to_string(round));
    absl::StatusOr<v1::Job> at_a, at_b;
    std::thread a([&] { at_a = A().Submit(spec); });
    std::thread b([&] { at_b = B().Submit(spec); });
    a.join();
    b.join();
    ASSERT_TRUE(at_a.ok()) << at_a.status();
    ASSERT_TRUE(at_b.ok()) << at_b.status();
    EXPECT_EQ(at_a->id(), at_b->id());
  }
}

// Submits that reach a replica together are inserted together (one
// statement for a group); each still gets its own job, or the job of its
// idempotency key when another submit in the same group or elsewhere has it.
TEST_F(Cluster, SubmitsAtOnceGetTheirOwnJobsOrTheirKeysJob) {
  constexpr int kSubmits = 48, kKeys = 8, kKeyed = 24;  // submits 0..23 share 8 keys
  std::vector<absl::StatusOr<v1::Job>> jobs(kSubmits);
  std::vector<std::thread> threads;
  for (int i = 0; i < kSubmits; ++i) {
    threads.emplace_back([&, i] {
      v1::JobSpec spec = OtSpec(20, 100 + i % kKeys);
      if (i < kKeyed) spec.set_idempotency_key("burst-" + std::to_string(i % kKeys));
      jobs[i] = (i % 3 == 0 ? B() : A()).Submit(spec);
    });
  }
  for (std::thread& t : threads) t.join();
  std::map<std::string, std::string> id_of_key;
  std::set<std::string> ids;
  for (int i = 0; i < kSubmits; ++i) {
    ASSERT_TRUE(jobs[i].ok()) << i << ": " << jobs[i].status();
    ids.insert(jobs[i]->id());
    if (i >= kKeyed) continue;
    auto [it, first] = id_of_key.emplace(jobs[i]->idempotency_key(), jobs[i]->id());
    EXPECT_EQ(it->second, jobs[i]->id()) << "one job per key";
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kKeys + kSubmits - kKeyed));
  for (const std::string& id : ids) {
    auto events = WatchAll(C(), id);
    ExpectNumberedFromZero(events);
    EXPECT_EQ(TerminalEvents(events), 1) << id;
    EXPECT_EQ(events.back().state().state(), v1::JOB_STATE_SUCCEEDED) << id;
  }
}

// Two replicas given the same keys in opposite orders: each replica's
// group statement would hold some keys while waiting for the other's.
// Every submit still succeeds with its key's one job, no deadlock error.
TEST_F(Cluster, KeysSubmittedInOppositeOrdersAtTwoReplicasGiveOneJobEach) {
  constexpr int kKeys = 16;
  for (int round = 0; round < 20; ++round) {
    std::vector<absl::StatusOr<v1::Job>> at_a(kKeys), at_b(kKeys);
    std::vector<std::thread> threads;
    for (int k = 0; k < kKeys; ++k) {
      const int reversed = kKeys - 1 - k;
      threads.emplace_back([&, k] { at_a[k] = A().Submit(KeyedSpec(round, k)); });
      threads.emplace_back(
          [&, reversed] { at_b[reversed] = B().Submit(KeyedSpec(round, reversed)); });
    }
    for (std::thread& t : threads) t.join();
    for (int k = 0; k < kKeys; ++k) {
      ASSERT_TRUE(at_a[k].ok()) << "round " << round << " key " << k << ": " << at_a[k].status();
      ASSERT_TRUE(at_b[k].ok()) << "round " << round << " key " << k << ": " << at_b[k].status();
      EXPECT_EQ(at_a[k]->id(), at_b[k]->id()) << "round " << round << " key " << k;
    }
  }
}

TEST_F(Cluster, AKilledReplicasJobsRunElsewhereAndEndOnce) {
  auto doomed = StartReplica();
  ASSERT_TRUE(doomed->ok()) << doomed->error();
  SolverClient d(doomed->address());
  // The first runs when D dies; the others wait in D's queue under its lease.
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) {
    auto job = d.Submit(LongOtSpec(i == 0 ? 15000 : 2000));
    ASSERT_TRUE(job.ok()) << job.status();
    ids.push_back(job->id());
  }
  WaitForProgress(d, ids[0]);
  ASSERT_EQ(doomed->StopWith(SIGKILL, 5000), 128 + SIGKILL);
  auto before = B().Get(ids[0]);
  ASSERT_TRUE(before.ok());
  const int64_t resume_from = before->event_count();
  for (const std::string& id : ids) {
    auto events = WatchAll(C(), id);
    ExpectNumberedFromZero(events);
    EXPECT_EQ(TerminalEvents(events), 1) << id;
    EXPECT_EQ(events.back().state().state(), v1::JOB_STATE_SUCCEEDED) << id;
  }
  auto rerun = A().Get(ids[0]);
  ASSERT_TRUE(rerun.ok());
  // Re-run once D's lease lapsed; on a starved machine the re-run's own
  // 2 s lease may lapse too, which only adds attempts.
  EXPECT_GE(rerun->attempt(), 2) << "re-run once its lease lapsed";
  auto resumed = WatchAll(B(), ids[0], resume_from);  // resuming on another replica
  ASSERT_FALSE(resumed.empty());
  EXPECT_EQ(resumed.front().number(), resume_from);
  bool requeued = false;
  for (const v1::JobEvent& e : WatchAll(B(), ids[0])) {
    requeued |= e.has_state() && e.state().state() == v1::JOB_STATE_QUEUED &&
                e.state().attempt() == 2;
  }
  EXPECT_TRUE(requeued) << "the QUEUED event names attempt 2";
}

TEST_F(Cluster, ABlobUploadedToOneReplicaServesAJobOnAnotherAndDownloadsFromAThird) {
  const int rows = 1024, cols = 1280;  // 5 MiB of F32 weights: over one message
  std::vector<float> weights(static_cast<size_t>(rows) * cols);
  for (size_t i = 0; i < weights.size(); ++i) weights[i] = std::sin(0.001f * i) * 0.05f;
  quant::SafetensorsWriter writer;
  writer.Add("layer.weight", quant::DType::kF32, {rows, cols}, quant::FloatsToBytes(weights));
  const std::string model = writer.Finish();
  ASSERT_GT(model.size(), size_t{4} << 20);
  auto blob = A().Upload(model);
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_EQ(blob->size_bytes(), static_cast<int64_t>(model.size()));
  auto back = C().Download(blob->blob_id());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == model);

  v1::JobSpec spec;
  spec.mutable_quant()->mutable_model()->set_blob_id(blob->blob_id());
  spec.mutable_quant()->set_bits(4);
  auto job = B().Submit(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  auto events = WatchAll(B(), job->id());
  ASSERT_FALSE(events.empty());
  ASSERT_EQ(events.back().state().state(), v1::JOB_STATE_SUCCEEDED)
      << events.back().state().error_message();
  auto done = C().Get(job->id());
  ASSERT_TRUE(done.ok()) << done.status();
  const std::string& output_id = done->result().quant().output_blob_id();
  ASSERT_FALSE(output_id.empty());
  auto output = C().Download(output_id);
  ASSERT_TRUE(output.ok()) << output.status();
  EXPECT_EQ(static_cast<int64_t>(output->size()), done->result().quant().output_bytes());
  quant::SafetensorsFile parsed;
  EXPECT_TRUE(quant::ParseSafetensors(*output, &parsed).ok()) << "a whole safetensors file";
  EXPECT_LT(output->size(), model.size() / 4) << "4-bit codes and scales";
  for (const auto& root : std::filesystem::directory_iterator(OutputRoots())) {
    EXPECT_TRUE(std::filesystem::is_empty(root.path()))
        << "the output was staged in " << root.path() << " and copied into the store";
  }
  EXPECT_EQ(A().Download("blob-0000000000000000").status().code(),
            absl::StatusCode::kNotFound);
}

// tridiag(-1, 2.2, -1) of size n in Matrix Market form (lower triangle).
std::string TridiagonalMatrixMarket(int n) {
  std::string out = "%%MatrixMarket matrix coordinate real symmetric\n" + std::to_string(n) +
                    " " + std::to_string(n) + " " + std::to_string(2 * n - 1) + "\n";
  for (int i = 1; i <= n; ++i) {
    out += std::to_string(i) + " " + std::to_string(i) + " 2.2\n";
    if (i > 1) out += std::to_string(i) + " " + std::to_string(i - 1) + " -1\n";
  }
  return out;
}

TEST_F(Cluster, ATunerFedFromTwoReplicasAtOnceLosesNoFeedback) {
  v1::CreateTunerRequest create;
  create.set_name("shared-omega");
  create.set_algorithm(v1::TUNER_ALGORITHM_TSALLIS_INF);
  v1::Tuner tuner;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(A().stub().CreateTuner(&ctx, create, &tuner).ok());
  }
  {
    grpc::ClientContext ctx;  // the same configuration again, elsewhere: the same tuner
    ASSERT_TRUE(B().stub().CreateTuner(&ctx, create, &tuner).ok());
  }
  auto matrix = C().Upload(TridiagonalMatrixMarket(60));
  ASSERT_TRUE(matrix.ok()) << matrix.status();
  constexpr int kJobs = 8, kSystemsPerJob = 6;
  std::vector<std::string> ids;
  for (int j = 0; j < kJobs; ++j) {
    v1::JobSpec spec;
    v1::SorSequence* seq = spec.mutable_sor();
    seq->set_tuner("shared-omega");
    seq->set_tolerance(1e-8);
    for (int s = 0; s < kSystemsPerJob; ++s) {
      v1::LinearSystem* sys = seq->add_systems();
      sys->set_a_blob_id(matrix->blob_id());
      for (int i = 0; i < 60; ++i) sys->mutable_b()->add_values(std::sin(0.1 * i * (s + j + 1)));
    }
    auto job = (j % 2 ? B() : A()).Submit(spec);
    ASSERT_TRUE(job.ok()) << job.status();
    ids.push_back(job->id());
  }
  for (const std::string& id : ids) {
    auto events = WatchAll(C(), id);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().state().state(), v1::JOB_STATE_SUCCEEDED)
        << events.back().state().error_message();
  }
  grpc::ClientContext ctx;
  v1::GetTunerRequest get;
  get.set_name("shared-omega");
  ASSERT_TRUE(C().stub().GetTuner(&ctx, get, &tuner).ok());
  EXPECT_EQ(tuner.systems(), kJobs * kSystemsPerJob) << "every solve's feedback counted once";
  int64_t plays = 0;
  for (const v1::TunerArm& arm : tuner.arms()) plays += arm.plays();
  EXPECT_EQ(plays, kJobs * kSystemsPerJob);
  grpc::ClientContext list_ctx;
  v1::ListTunersResponse listed;
  ASSERT_TRUE(B().stub().ListTuners(&list_ctx, v1::ListTunersRequest(), &listed).ok());
  ASSERT_EQ(listed.tuners_size(), 1);
  EXPECT_EQ(listed.tuners(0).systems(), kJobs * kSystemsPerJob);
}

// A replica that finds its lease gone (here taken by hand; in life through
// a store outage longer than the lease while another replica reached the
// store first) stops the job, which another run then ends exactly once.
TEST_F(Cluster, AReplicaThatLostALeaseStopsTheJob) {
  auto job = A().Submit(LongOtSpec(int64_t{1} << 40));
  ASSERT_TRUE(job.ok()) << job.status();
  WaitForProgress(A(), job->id());
  // A watcher on A, which follows the job from memory while A runs it,
  // must see only what the store holds: not A's own ending once its lease
  // is gone.
  std::vector<v1::JobEvent> seen_on_a;
  std::thread watcher([&] { seen_on_a = WatchAll(A(), job->id()); });
  server::PgConnection::Options o;
  o.uri = db_->uri();
  o.password_file = db_->password_file();
  auto db = server::PgConnection::Open(o);
  ASSERT_TRUE(db.ok()) << db.status();
  auto stolen = (*db)->Exec(
      "UPDATE jobs SET lease_owner = 'thief', lease_expiry = now() + interval '3 seconds' "
      "WHERE id = $1 AND state = 2 RETURNING 1",
      {job->id()});
  ASSERT_TRUE(stolen.ok()) << stolen.status();
  ASSERT_EQ(stolen->size(), 1) << "the job was running";
  // A notices at its next heartbeat (every 2/3 s here).
  const std::string lapsed = "lease on job " + job->id() + " lapsed";
  const absl::Time stolen_at = absl::Now();
  while (replicas_[0]->log().find(lapsed) == std::string::npos &&
         absl::Now() - stolen_at < absl::Seconds(5)) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_NE(replicas_[0]->log().find(lapsed), std::string::npos);
  auto held = C().Get(job->id());
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(held->state(), v1::JOB_STATE_RUNNING) << "A's cancel went nowhere";
  // The thief's lease lapses; a replica claims the job again and runs it.
  absl::StatusOr<v1::Job> rerun;
  for (int i = 0; i < 100; ++i) {
    rerun = B().Get(job->id());
    ASSERT_TRUE(rerun.ok()) << rerun.status();
    if (rerun->attempt() == 2 && rerun->state() == v1::JOB_STATE_RUNNING) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(rerun->attempt(), 2);
  EXPECT_EQ(rerun->state(), v1::JOB_STATE_RUNNING);
  ASSERT_TRUE(C().Cancel(job->id()).ok());
  auto events = WatchAll(C(), job->id());
  ExpectNumberedFromZero(events);
  EXPECT_EQ(TerminalEvents(events), 1);
  EXPECT_EQ(events.back().state().state(), v1::JOB_STATE_CANCELLED);
  watcher.join();
  ASSERT_EQ(seen_on_a.size(), events.size());
  for (size_t k = 0; k < events.size(); ++k) {
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(seen_on_a[k], events[k]))
        << "event " << k << ": " << seen_on_a[k].ShortDebugString() << " vs "
        << events[k].ShortDebugString();
  }
}

TEST_F(Cluster, TheDatabaseGoingAwayLosesNothing) {
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i) {
    auto job = (i % 2 ? A() : B()).Submit(LongOtSpec(400));
    ASSERT_TRUE(job.ok()) << job.status();
    ids.push_back(job->id());
  }
  ASSERT_TRUE(db_->Stop());
  const absl::Time stopped = absl::Now();
  bool not_serving = false;
  while (absl::Now() - stopped < absl::Seconds(4) && !not_serving) {
    auto health = A().Health("", absl::Seconds(1));
    not_serving = health.ok() && *health == Health::NOT_SERVING;
    if (!not_serving) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(not_serving) << "health reflects the store";
  auto alive = A().Health("liveness", absl::Seconds(1));
  ASSERT_TRUE(alive.ok()) << alive.status();
  EXPECT_EQ(*alive, Health::SERVING) << "liveness does not follow the store";
  auto refused = B().Submit(OtSpec(20));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
  EXPECT_NE(refused.status().message().find("store"), std::string::npos) << refused.status();
  absl::SleepFor(absl::Seconds(5) - (absl::Now() - stopped));
  ASSERT_TRUE(db_->Start());
  for (const std::string& id : ids) {
    auto events = WatchAll(C(), id);
    ExpectNumberedFromZero(events);
    EXPECT_EQ(TerminalEvents(events), 1) << id;
  }
  // Each replica sees the store again at its next heartbeat, a fraction of
  // the lease; a loaded machine may need a few.
  for (TestServer* r : replicas_) {
    SolverClient c(r->address());
    absl::StatusOr<Health::ServingStatus> health;
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    do {
      health = c.Health("", absl::Seconds(5));
      ASSERT_TRUE(health.ok()) << health.status();
      if (*health == Health::SERVING) break;
      absl::SleepFor(absl::Milliseconds(100));
    } while (absl::Now() < give_up);
    EXPECT_EQ(*health, Health::SERVING);
    EXPECT_EQ(kill(r->pid(), 0), 0) << "no replica crashed";
  }
}

}  // namespace
}  // namespace solverd
