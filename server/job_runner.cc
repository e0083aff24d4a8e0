// JobManager's batch running: what a lane's thread does with a batch the
// scheduler hands it (mark the jobs running, run them through their
// family, record each outcome), and how jobs end.
#include <new>
#include <utility>

#include "server/job_manager.h"
#include "server/status_util.h"

namespace solverd::server {
namespace {

// Forwards solver progress to the job's event log, at most one event per
// `interval` so a fast solver cannot flood its watchers.
class RateLimitedSink final : public ::solverd::ProgressSink {
 public:
  RateLimitedSink(Job* job, absl::Duration interval) : job_(job), interval_(interval) {}
  void Report(const ::solverd::Progress& p) override {
    const absl::Time now = absl::Now();
    if (now - last_ < interval_) return;
    last_ = now;
    v1::Progress out;
    out.set_iteration(p.iteration);
    out.set_objective(p.objective);
    out.set_residual(p.residual);
    out.set_elapsed_seconds(p.elapsed_seconds);
    out.set_stage(p.stage);
    out.set_fraction(p.fraction);
    for (const auto& [name, value] : p.extras) (*out.mutable_extras())[name] = value;
    job_->AppendProgress(out, now);
  }

 private:
  Job* const job_;
  const absl::Duration interval_;
  absl::Time last_ = absl::InfinitePast();
};

const absl::Status& NotRun() {
  static const absl::Status* const kNotRun = new absl::Status(absl::AbortedError("not run"));
  return *kNotRun;
}

v1::JobState StateFor(const absl::Status& s) {
  if (s.ok()) return v1::JOB_STATE_SUCCEEDED;
  if (absl::IsCancelled(s)) return v1::JOB_STATE_CANCELLED;
  return v1::JOB_STATE_FAILED;
}

}  // namespace

void JobManager::RunBatch(const Lane& lane, std::vector<WorkItem> items) {
  const absl::Time now = absl::Now();
  std::vector<std::shared_ptr<Job>> jobs;
  for (const WorkItem& item : items) {
    auto job = store_.Find(item.job_id);
    if (job == nullptr) continue;
    if (item.deadline <= now) {
      Expire(item);
      continue;
    }
    if (!job->MarkRunning(lane.device.ToString(), now)) continue;  // cancelled meanwhile
    if (item.deadline != absl::InfiniteFuture()) {
      job->cancel_token().SetDeadline(CancelToken::Clock::now() +
                                       absl::ToChronoNanoseconds(item.deadline - now));
    }
    metrics_->QueueWait(std::string(job->family()->name()),
                        absl::ToDoubleSeconds(now - item.enqueue_time));
    jobs.push_back(std::move(job));
  }
  if (jobs.empty()) return;
  UpdateGauges();
  const Family* family = jobs.front()->family();
  metrics_->BatchSize(std::string(family->name()), static_cast<int>(jobs.size()));
  std::vector<RateLimitedSink> sinks;
  sinks.reserve(jobs.size());
  // Outcomes start as "not run", so a batch cut short below can tell which
  // members it never reached.
  std::vector<JobOutcome> outcomes(jobs.size(), JobOutcome{NotRun(), std::nullopt, 0});
  std::vector<BatchMember> members;
  for (size_t i = 0; i < jobs.size(); ++i) {
    sinks.emplace_back(jobs[i].get(), options_.progress_interval);
    members.push_back({jobs[i]->work(), &sinks[i], &jobs[i]->cancel_token(), &outcomes[i]});
  }
  try {
    family->RunBatch(lane, members);
  } catch (const std::bad_alloc&) {
    // Host memory ran out inside a solver: that batch fails, the server and
    // other jobs go on (device memory failures come back as statuses).
    for (JobOutcome& outcome : outcomes) {
      if (outcome.status != NotRun()) continue;
      outcome.status = absl::ResourceExhaustedError(
          "out of host memory while running; lower --cpu_memory_budget_bytes so admission "
          "control keeps jobs within the machine's memory");
    }
  }
  for (size_t i = 0; i < jobs.size(); ++i) FinishJob(*jobs[i], std::move(outcomes[i]));
}

void JobManager::Expire(const WorkItem& item) {
  auto job = store_.Find(item.job_id);
  if (job == nullptr) return;
  FinishJob(*job, {absl::DeadlineExceededError("deadline passed while queued"), std::nullopt, 0});
}

void JobManager::FinishJob(Job& job, JobOutcome outcome) {
  double run_seconds = 0;
  // Only the call that really finishes the job counts it, so a cancel
  // racing an expiry is counted once.
  if (!job.Finish(StateFor(outcome.status), outcome.status, std::move(outcome.result),
                  absl::Now(), &run_seconds)) {
    return;
  }
  const std::string family(job.family()->name());
  metrics_->JobFinished(family, StatusLabel(outcome.status.code()), run_seconds);
  if (outcome.iterations > 0) metrics_->Iterations(family, outcome.iterations);
  UpdateGauges();
}

}  // namespace solverd::server
