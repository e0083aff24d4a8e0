#include "server/embedded_jobs.h"

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "server/job_manager.h"

namespace solverd::server {
namespace {

// Journals written before the scheduling record kept the whole JobSpec as
// the problem and no deadline or device preference in the job's view: take
// them from the spec there.
void UpgradeLegacyRecord(JobJournal::Record& record) {
  const v1::JobSpec& spec = record.spec;
  if (!spec.has_deadline() && spec.device() == v1::DEVICE_ANY) return;
  const absl::Time created = absl::FromUnixNanos(
      google::protobuf::util::TimeUtil::TimestampToNanoseconds(record.job.create_time()));
  SetSchedulingFields(spec, created, &record.job);
}

absl::Status NotFound(const std::string& job_id) {
  return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
}

}  // namespace

absl::Status EmbeddedJobs::Start() {
  return journal_ != nullptr ? Recover() : absl::OkStatus();
}

absl::Status EmbeddedJobs::Recover() {
  const absl::Time start = absl::Now();
  auto records = journal_->LoadAll();
  if (!records.ok()) return records.status();
  int finished = 0, requeued = 0, failed = 0;
  for (JobJournal::Record& record : *records) {
    UpgradeLegacyRecord(record);
    const Family* family = m_.families_->ForProblem(record.spec.problem_case());
    if (family == nullptr) {  // written by a build with a family this one lacks
      std::fprintf(stderr, "solverd: state_dir: job %s has no known family; dropped\n",
                   record.job.id().c_str());
      journal_->DeleteJob(record.job.id());
      continue;
    }
    if (IsTerminal(record.job.state())) {
      m_.store_.Restore(std::make_shared<Job>(record, family, nullptr, journal_, absl::Now()));
      ++finished;
      continue;
    }
    auto [job, status] = m_.Rebuild(record, *family, journal_);
    if (status.ok()) status = m_.Enqueue(*job, absl::Now());
    if (!status.ok()) {
      m_.FinishJob(*job, {absl::Status(status.code(), absl::StrCat("on restart: ", status.message())),
                          std::nullopt, 0});
      ++failed;
      continue;
    }
    m_.metrics_->JobSubmitted(std::string(family->name()));
    ++requeued;
  }
  if (absl::Status flushed = journal_->Flush(); !flushed.ok()) return flushed;
  m_.UpdateGauges();
  std::fprintf(stderr,
               "solverd: state_dir: recovered %d jobs in %.3f s: %d finished, %d queued again, "
               "%d failed to requeue\n",
               finished + requeued + failed, absl::ToDoubleSeconds(absl::Now() - start), finished,
               requeued, failed);
  return absl::OkStatus();
}

std::optional<v1::Job> EmbeddedJobs::FindByIdempotencyKey(const std::string& owner,
                                                          const std::string& key) {
  if (auto existing = m_.store_.FindByIdempotencyKey(owner, key)) return existing->Snapshot();
  return std::nullopt;
}

absl::StatusOr<v1::Job> EmbeddedJobs::Submit(const v1::JobSpec& spec, std::shared_ptr<Job> job) {
  // Only a journal keeps the problem: without one, copying it is waste.
  auto stored = m_.store_.AddOrGet(job, journal_ != nullptr ? ProblemOnly(spec) : v1::JobSpec());
  if (!stored.ok()) return stored.status();
  if (*stored != job) return (*stored)->Snapshot();  // lost an idempotency race
  v1::Job submitted = job->Snapshot();  // as queued, before a lane can take it
  if (absl::Status queued = m_.Enqueue(*job, absl::Now()); !queued.ok()) {
    m_.store_.Remove(job->id());
    return queued;
  }
  m_.metrics_->JobSubmitted(std::string(job->family()->name()));
  m_.UpdateGauges();
  return submitted;
}

absl::StatusOr<v1::Job> EmbeddedJobs::Get(const std::string& job_id) {
  auto job = m_.store_.Find(job_id);
  if (job == nullptr) return NotFound(job_id);
  return job->Snapshot();
}

absl::StatusOr<v1::ListJobsResponse> EmbeddedJobs::List(const JobStore::Filter& filter) {
  bool more = false;
  v1::ListJobsResponse out;
  auto jobs = m_.store_.List(filter, &more);
  for (const auto& job : jobs) {
    v1::Job* listed = out.add_jobs();
    *listed = job->Snapshot();
    listed->clear_result();  // results can be large: GetJob returns them
  }
  if (more && !jobs.empty()) out.set_next_page_token(absl::StrCat(jobs.back()->seq()));
  return out;
}

absl::StatusOr<bool> EmbeddedJobs::QueuedOver(const std::string& owner, int limit) {
  JobStore::Filter filter;
  filter.owner = &owner;
  filter.state = v1::JOB_STATE_QUEUED;
  filter.limit = limit;
  bool more = false;
  m_.store_.List(filter, &more);
  return more;
}

absl::StatusOr<v1::Job> EmbeddedJobs::Cancel(const std::string& job_id) {
  if (auto local = m_.CancelLocal(job_id)) return *local;
  return NotFound(job_id);
}

absl::Status EmbeddedJobs::Watch(const std::string& job_id, int64_t from_event,
                                 const std::function<bool(const v1::JobEvent&)>& emit,
                                 const std::function<bool()>& stop) {
  auto job = m_.store_.Find(job_id);
  if (job == nullptr) return NotFound(job_id);
  int64_t next = from_event;
  for (;;) {
    std::vector<v1::JobEvent> events;
    const bool done = job->ReadEvents(next, absl::Milliseconds(250), &events);
    for (const v1::JobEvent& e : events) {
      if (!emit(e)) return absl::OkStatus();
      next = e.number() + 1;
    }
    if (done || stop()) return absl::OkStatus();
    if (m_.watches_closing_) return m_.WatchMovedAway(job_id, next);
  }
}

absl::Status EmbeddedJobs::Close() {
  return journal_ != nullptr ? journal_->Flush() : absl::OkStatus();
}

}  // namespace solverd::server
