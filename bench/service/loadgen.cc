// solverd_loadgen: measures the service itself on tiny ot jobs, so that
// solver time is negligible: end-to-end latency (submit -> final event) of
// sequential jobs, and throughput of many jobs from concurrent clients,
// each client submitting and watching its jobs to the end. Prints JSON.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "client/demo_problems.h"
#include "bench/common/percentile.h"
#include "client/solver_client.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "solverd address");
ABSL_FLAG(int, latency_jobs, 100, "sequential jobs for the latency figures");
ABSL_FLAG(int, jobs, 1000, "jobs for the throughput figure");
ABSL_FLAG(int, concurrency, 8, "concurrent clients (each with its own channel)");
ABSL_FLAG(int, n, 8, "points per side of each tiny ot problem");

namespace {

using solverd::bench::Percentile;
using Clock = std::chrono::steady_clock;

solverd::v1::JobSpec TinySpec(uint64_t seed) {
  solverd::client::OtDemoOptions o;
  o.n = absl::GetFlag(FLAGS_n);
  o.seed = seed;
  solverd::v1::JobSpec spec;
  *spec.mutable_ot() = solverd::client::RandomOtProblem(o);
  return spec;
}

// Submits one job and watches it to the end; returns seconds, or -1.
double RunOne(solverd::client::SolverClient& c, uint64_t seed) {
  const auto start = Clock::now();
  auto job = c.Submit(TinySpec(seed));
  if (!job.ok()) return -1;
  auto state = c.Watch(job->id(), 0, [](const solverd::v1::JobEvent&) {});
  if (!state.ok() || *state != solverd::v1::JOB_STATE_SUCCEEDED) return -1;
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string server = absl::GetFlag(FLAGS_server);
  solverd::client::SolverClient warm(server);
  for (int i = 0; i < 10; ++i) RunOne(warm, i);  // connections, allocators

  std::vector<double> sequential;
  for (int i = 0; i < absl::GetFlag(FLAGS_latency_jobs); ++i) {
    double s = RunOne(warm, 1000 + i);
    if (s >= 0) sequential.push_back(s);
  }

  const int jobs = absl::GetFlag(FLAGS_jobs), clients = absl::GetFlag(FLAGS_concurrency);
  std::atomic<int> next{0}, failures{0};
  std::vector<std::vector<double>> per_client(clients);
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&, t] {
      solverd::client::SolverClient c(server);
      for (int i; (i = next++) < jobs;) {
        double s = RunOne(c, 100000 + i);
        if (s < 0) ++failures; else per_client[t].push_back(s);
      }
    });
  }
  for (auto& t : threads) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> concurrent;
  for (const auto& v : per_client) concurrent.insert(concurrent.end(), v.begin(), v.end());

  std::printf(
      "{\"latency_p50_seconds\": %.6f, \"latency_p99_seconds\": %.6f, \"latency_jobs\": %zu, "
      "\"jobs\": %d, \"concurrency\": %d, \"failures\": %d, \"wall_seconds\": %.3f, "
      "\"jobs_per_second\": %.1f, \"concurrent_latency_p50_seconds\": %.6f, "
      "\"concurrent_latency_p99_seconds\": %.6f}\n",
      Percentile(sequential, 0.5), Percentile(sequential, 0.99), sequential.size(), jobs, clients,
      failures.load(), wall, concurrent.size() / wall, Percentile(concurrent, 0.5),
      Percentile(concurrent, 0.99));
  return failures.load() == 0 ? 0 : 1;
}
