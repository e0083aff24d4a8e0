// JobManager::Recover: bringing the journal's jobs back at startup.
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

}  // namespace

absl::Status JobManager::Recover() {
  const absl::Time start = absl::Now();
  auto records = journal_->LoadAll();
  if (!records.ok()) return records.status();
  int finished = 0, requeued = 0, failed = 0;
  for (JobJournal::Record& record : *records) {
    UpgradeLegacyRecord(record);
    const Family* family = families_->ForProblem(record.spec.problem_case());
    if (family == nullptr) {  // written by a build with a family this one lacks
      std::fprintf(stderr, "solverd: state_dir: job %s has no known family; dropped\n",
                   record.job.id().c_str());
      journal_->DeleteJob(record.job.id());
      continue;
    }
    const absl::Time now = absl::Now();
    if (IsTerminal(record.job.state())) {
      store_.Restore(std::make_shared<Job>(record, family, nullptr, journal_.get(), now));
      ++finished;
      continue;
    }
    const PrepareContext context{blobs_, options_.data_root, record.job.owner()};
    auto work = family->Prepare(record.spec, context);
    absl::Status status = work.status();
    if (status.ok()) status = CheckProblemSize(*family, **work);
    auto job = std::make_shared<Job>(record, family, status.ok() ? *std::move(work) : nullptr,
                                     journal_.get(), now);
    store_.Restore(job);
    if (status.ok()) status = Enqueue(*job, now);
    if (!status.ok()) {
      FinishJob(*job, {absl::Status(status.code(), absl::StrCat("on restart: ", status.message())),
                       std::nullopt, 0});
      ++failed;
      continue;
    }
    metrics_->JobSubmitted(std::string(family->name()));
    ++requeued;
  }
  if (absl::Status flushed = journal_->Flush(); !flushed.ok()) return flushed;
  UpdateGauges();
  std::fprintf(stderr,
               "solverd: state_dir: recovered %d jobs in %.3f s: %d finished, %d queued again, "
               "%d failed to requeue\n",
               finished + requeued + failed, absl::ToDoubleSeconds(absl::Now() - start), finished,
               requeued, failed);
  return absl::OkStatus();
}

}  // namespace solverd::server
