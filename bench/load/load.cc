// solverd_load: a load test of the whole service. Many clients submit small
// jobs of every family; some cancel theirs at once, some drop their watch
// stream after the first event; the rest watch to the end. Afterwards every
// job is checked: it reached exactly one final state, and every watcher
// that stayed connected saw that final event last. Prints JSON with
// jobs/s, submit and end-to-end latency percentiles, final states, the
// server's memory (from /proc, given --server_pid) and any violations;
// exits 1 on a violation. Given several servers (replicas on one shared
// store), the clients spread over them, and each job is checked from a
// replica other than the one it was submitted to.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "bench/load/load_problems.h"
#include "bench/common/percentile.h"
#include "client/solver_client.h"

ABSL_FLAG(std::vector<std::string>, server, {"127.0.0.1:50051"},
          "solverd address, or a comma-separated list of replicas");
ABSL_FLAG(int, clients, 64, "concurrent clients, each with its own channel");
ABSL_FLAG(int, jobs, 20000, "jobs in all, spread over the families");
ABSL_FLAG(double, cancel_fraction, 0.05, "jobs cancelled right after submission");
ABSL_FLAG(double, disconnect_fraction, 0.05, "jobs whose watcher drops after one event");
ABSL_FLAG(std::vector<std::string>, server_pid, {},
          "solverd's pid (or the replicas', comma-separated), to report their summed memory");
ABSL_FLAG(int, max_rss_growth_mb, 0, "fail when the server's RSS grows more (0: no limit)");

namespace {

using solverd::bench::Percentile;
using Clock = std::chrono::steady_clock;
using solverd::client::SolverClient;
namespace v1 = solverd::v1;

bool Terminal(v1::JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED ||
         s == v1::JOB_STATE_CANCELLED;
}

// What one client thread records.
struct Tally {
  std::vector<double> submit_seconds, end_to_end_seconds;
  std::vector<std::string> job_ids;
  std::vector<std::string> violations;
  int submit_failures = 0;
};

// Events of one watch: their numbers must run 0, 1, 2, ... and exactly the
// last must be a final state.
std::string CheckStream(const std::vector<v1::JobEvent>& events, const std::string& id) {
  int finals = 0;
  for (size_t k = 0; k < events.size(); ++k) {
    if (events[k].number() != static_cast<int64_t>(k)) {
      return absl::StrCat(id, ": event ", k, " is numbered ", events[k].number());
    }
    if (events[k].has_state() && Terminal(events[k].state().state())) ++finals;
  }
  if (finals != 1) return absl::StrCat(id, ": ", finals, " final states");
  if (!events.back().has_state() || !Terminal(events.back().state().state())) {
    return absl::StrCat(id, ": the last event is not the final state");
  }
  return "";
}

// Watches from event 0 to the end; returns the violation, if any.
std::string WatchToEnd(SolverClient& client, const std::string& id) {
  std::vector<v1::JobEvent> events;
  auto state = client.Watch(id, 0, [&](const v1::JobEvent& e) { events.push_back(e); });
  if (!state.ok()) return absl::StrCat(id, ": watch failed: ", state.status().ToString());
  return CheckStream(events, id);
}

// Reads one event, then drops the stream, as a client that goes away.
void WatchAndDisconnect(SolverClient& client, const std::string& id) {
  grpc::ClientContext ctx;
  v1::WatchJobRequest request;
  request.set_job_id(id);
  auto reader = client.stub().WatchJob(&ctx, request);
  v1::JobEvent event;
  reader->Read(&event);
  ctx.TryCancel();
  while (reader->Read(&event)) {
  }
  reader->Finish();
}

void RunClient(const std::string& server, int client_index, std::atomic<int>& next, Tally* tally) {
  SolverClient client(server);
  std::mt19937_64 rng(client_index);
  std::uniform_real_distribution<double> uniform(0, 1);
  const double cancel = absl::GetFlag(FLAGS_cancel_fraction);
  const double disconnect = absl::GetFlag(FLAGS_disconnect_fraction);
  for (int number; (number = next++) < absl::GetFlag(FLAGS_jobs);) {
    const auto start = Clock::now();
    auto job = client.Submit(solverd::load::LoadJobSpec(number));
    const auto submitted = Clock::now();
    if (!job.ok()) {
      ++tally->submit_failures;
      tally->violations.push_back(absl::StrCat("submit ", number, ": ", job.status().ToString()));
      continue;
    }
    tally->submit_seconds.push_back(std::chrono::duration<double>(submitted - start).count());
    tally->job_ids.push_back(job->id());
    const double roll = uniform(rng);
    if (roll < disconnect) {
      WatchAndDisconnect(client, job->id());
      continue;
    }
    if (roll < disconnect + cancel) (void)client.Cancel(job->id());
    std::string violation = WatchToEnd(client, job->id());
    if (!violation.empty()) tally->violations.push_back(violation);
    tally->end_to_end_seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
}

// VmRSS or VmHWM summed over processes, MiB; 0 when unknown.
double MemoryMb(const std::vector<std::string>& pids, const std::string& field) {
  double total = 0;
  for (const std::string& pid : pids) {
    std::ifstream status("/proc/" + pid + "/status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind(field + ":", 0) == 0) total += std::stod(line.substr(field.size() + 1)) / 1024;
    }
  }
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::vector<std::string> servers = absl::GetFlag(FLAGS_server);
  const std::vector<std::string> pids = absl::GetFlag(FLAGS_server_pid);
  const double rss_start = MemoryMb(pids, "VmRSS");

  const int clients = absl::GetFlag(FLAGS_clients);
  std::atomic<int> next{0};
  std::vector<Tally> tallies(clients);
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back(RunClient, servers[c % servers.size()], c, std::ref(next), &tallies[c]);
  }
  for (auto& t : threads) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();

  Tally all;
  std::vector<size_t> submitted_to;  // per job, its server's index
  for (int c = 0; c < clients; ++c) {
    const Tally& t = tallies[c];
    submitted_to.insert(submitted_to.end(), t.job_ids.size(), c % servers.size());
    all.submit_seconds.insert(all.submit_seconds.end(), t.submit_seconds.begin(),
                              t.submit_seconds.end());
    all.end_to_end_seconds.insert(all.end_to_end_seconds.end(), t.end_to_end_seconds.begin(),
                                  t.end_to_end_seconds.end());
    all.job_ids.insert(all.job_ids.end(), t.job_ids.begin(), t.job_ids.end());
    all.violations.insert(all.violations.end(), t.violations.begin(), t.violations.end());
    all.submit_failures += t.submit_failures;
  }

  // Every job, disconnected watchers' included, must end in one final state.
  std::vector<std::unique_ptr<SolverClient>> checkers;
  for (const std::string& server : servers) checkers.push_back(std::make_unique<SolverClient>(server));
  int succeeded = 0, cancelled = 0, failed = 0;
  for (size_t k = 0; k < all.job_ids.size(); ++k) {
    const std::string& id = all.job_ids[k];
    SolverClient& checker = *checkers[(submitted_to[k] + 1) % checkers.size()];
    std::string violation = WatchToEnd(checker, id);
    if (!violation.empty()) all.violations.push_back(violation);
    auto job = checker.Get(id);
    if (!job.ok()) {
      all.violations.push_back(absl::StrCat(id, ": ", job.status().ToString()));
      continue;
    }
    succeeded += job->state() == v1::JOB_STATE_SUCCEEDED;
    cancelled += job->state() == v1::JOB_STATE_CANCELLED;
    failed += job->state() == v1::JOB_STATE_FAILED;
  }
  if (failed > 0) all.violations.push_back(absl::StrCat(failed, " valid jobs FAILED"));
  const double rss_end = MemoryMb(pids, "VmRSS"), rss_peak = MemoryMb(pids, "VmHWM");
  const int max_growth = absl::GetFlag(FLAGS_max_rss_growth_mb);
  if (max_growth > 0 && !pids.empty() && rss_end - rss_start > max_growth) {
    all.violations.push_back(absl::StrCat("server RSS grew ", rss_end - rss_start, " MiB"));
  }

  std::printf(
      "{\"jobs\": %zu, \"clients\": %d, \"wall_seconds\": %.3f, \"jobs_per_second\": %.1f, "
      "\"submit_p50_seconds\": %.6f, \"submit_p99_seconds\": %.6f, "
      "\"end_to_end_p50_seconds\": %.6f, \"end_to_end_p99_seconds\": %.6f, "
      "\"succeeded\": %d, \"cancelled\": %d, \"failed\": %d, \"submit_failures\": %d, "
      "\"server_rss_start_mb\": %.1f, \"server_rss_end_mb\": %.1f, \"server_rss_peak_mb\": %.1f, "
      "\"replicas\": %zu, \"violations\": %zu}\n",
      all.job_ids.size(), clients, wall, all.job_ids.size() / wall,
      Percentile(all.submit_seconds, 0.5), Percentile(all.submit_seconds, 0.99),
      Percentile(all.end_to_end_seconds, 0.5), Percentile(all.end_to_end_seconds, 0.99),
      succeeded, cancelled, failed, all.submit_failures, rss_start, rss_end, rss_peak,
      servers.size(), all.violations.size());
  for (size_t k = 0; k < std::min<size_t>(all.violations.size(), 10); ++k) {
    std::fprintf(stderr, "violation: %s\n", all.violations[k].c_str());
  }
  return all.violations.empty() ? 0 : 1;
}
