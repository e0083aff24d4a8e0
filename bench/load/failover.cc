// solverd_failover: how long a job waits after its replica dies before
// another replica runs it (the shared store's lease expiry plus a claim).
// Submits a long job to --victim, waits for its progress, kills the victim
// with SIGKILL, then polls --survivor until the job runs again (attempt 2),
// and cancels it. Prints JSON {"failover_seconds": ...}.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "client/demo_problems.h"
#include "client/solver_client.h"

ABSL_FLAG(std::string, victim, "", "the replica that runs the job and is killed");
ABSL_FLAG(int, victim_pid, 0, "its pid");
ABSL_FLAG(std::string, survivor, "", "another replica on the same store");
ABSL_FLAG(double, timeout_seconds, 120, "give up after this long");

namespace v1 = solverd::v1;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  solverd::client::SolverClient victim(absl::GetFlag(FLAGS_victim));
  solverd::client::SolverClient survivor(absl::GetFlag(FLAGS_survivor));
  solverd::client::OtDemoOptions o;
  o.n = 200;
  v1::JobSpec spec;
  *spec.mutable_ot() = solverd::client::RandomOtProblem(o);
  spec.mutable_ot()->set_tolerance(1e-300);  // runs until cancelled
  spec.mutable_ot()->set_max_iterations(int64_t{1} << 40);
  spec.mutable_ot()->set_check_every(10);
  auto job = victim.Submit(spec);
  if (!job.ok()) {
    std::fprintf(stderr, "submit: %s\n", job.status().ToString().c_str());
    return 1;
  }
  {
    grpc::ClientContext ctx;
    v1::WatchJobRequest req;
    req.set_job_id(job->id());
    auto reader = victim.stub().WatchJob(&ctx, req);
    v1::JobEvent e;
    while (reader->Read(&e) && !e.has_progress()) {}
    ctx.TryCancel();
  }
  kill(absl::GetFlag(FLAGS_victim_pid), SIGKILL);
  const auto killed = Clock::now();
  const auto limit = std::chrono::duration<double>(absl::GetFlag(FLAGS_timeout_seconds));
  while (Clock::now() - killed < limit) {
    auto now = survivor.Get(job->id());
    if (now.ok() && now->attempt() >= 2 && now->state() == v1::JOB_STATE_RUNNING) {
      const double waited = std::chrono::duration<double>(Clock::now() - killed).count();
      (void)survivor.Cancel(job->id());
      std::printf("{\"failover_seconds\": %.3f}\n", waited);
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::fprintf(stderr, "job %s did not run again within the timeout\n", job->id().c_str());
  return 1;
}
