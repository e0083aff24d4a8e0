#include "server/job_manager.h"

#include <algorithm>
#include <cstdio>
#include <new>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "server/embedded_jobs.h"
#include "server/shared_jobs.h"
#include "server/status_util.h"

namespace solverd::server {
namespace {

using google::protobuf::util::TimeUtil;

constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;

}  // namespace

absl::StatusOr<std::unique_ptr<JobManager>> JobManager::Create(
    const ServerOptions& options, std::vector<Lane> lanes, Metrics* metrics,
    const std::vector<FamilyRegistration>& families) {
  std::unique_ptr<JobJournal> journal;
  if (!options.state_dir.empty() && options.store.empty()) {
    auto opened = JobJournal::Open(options.state_dir);
    if (!opened.ok()) return opened.status();
    journal = *std::move(opened);
  }
  std::unique_ptr<JobManager> m(new JobManager(options, metrics, std::move(journal)));
  std::vector<std::string> warnings = m->blobs_.Load(absl::Now());
  auto registry =
      FamilyRegistry::Create(FamilyServices{&m->options_, &m->blobs_, &warnings}, families);
  for (const std::string& warning : warnings) {
    std::fprintf(stderr, "solverd: %s\n", warning.c_str());
  }
  if (!registry.ok()) return registry.status();
  m->families_ = *std::move(registry);
  Scheduler::Options so;
  so.max_queue = options.max_queue;
  so.max_batch = options.max_batch;
  so.max_queue_delay = options.max_queue_delay;
  so.memory_budget_bytes = MemoryBudgets(options, lanes);
  m->budgets_ = so.memory_budget_bytes;
  m->lanes_ = static_cast<int>(lanes.size());
  JobManager* raw = m.get();
  auto scheduler = Scheduler::Create(
      so, std::move(lanes),
      [raw](const Lane& lane, std::vector<WorkItem> items) { raw->RunBatch(lane, std::move(items)); },
      [raw](const WorkItem& item) { raw->Expire(item); }, [raw] { raw->UpdateGauges(); });
  if (!scheduler.ok()) return scheduler.status();
  m->scheduler_ = *std::move(scheduler);
  if (options.store.empty()) {
    m->backend_ = std::make_unique<EmbeddedJobs>(raw, m->journal_.get());
  } else {
    m->backend_ = std::make_unique<SharedJobs>(raw);
  }
  if (absl::Status started = m->backend_->Start(); !started.ok()) return started;
  m->janitor_ = std::thread([raw] { raw->JanitorLoop(); });
  return m;
}

namespace {

BlobStore::Options BlobOptions(const ServerOptions& options) {
  BlobStore::Options out;
  out.quota_bytes = options.blob_quota_bytes;
  out.ttl = options.blob_ttl;
  out.owner_quota_bytes = options.max_blob_bytes_per_token;
  // With the shared store the blobs live there (SharedJobs::Start).
  if (!options.state_dir.empty() && options.store.empty()) out.dir = options.state_dir + "/blobs";
  out.output_dir = options.output_root;
  return out;
}

// With the shared store the local one holds the jobs leased here, and the
// last few thousand that ended here as a cache: their submitters watch and
// fetch them from this replica, and a finished job never changes.
JobStore::Options LocalStoreOptions(const ServerOptions& options, JobJournal* journal) {
  constexpr int kSharedFinishedCached = 4096;
  constexpr absl::Duration kSharedFinishedTtl = absl::Minutes(5);
  JobStore::Options out{options.result_ttl, options.max_jobs_retained, journal};
  if (!options.store.empty()) {
    out.result_ttl = std::min(out.result_ttl, kSharedFinishedTtl);
    out.max_jobs_retained = std::min(out.max_jobs_retained, kSharedFinishedCached);
  }
  return out;
}

}  // namespace

JobManager::JobManager(const ServerOptions& options, Metrics* metrics,
                       std::unique_ptr<JobJournal> journal)
    : options_(options), metrics_(metrics), journal_(std::move(journal)),
      store_(LocalStoreOptions(options, journal_.get())),
      blobs_(BlobOptions(options)) {}

JobManager::~JobManager() {
  StopAccepting();
  Shutdown(absl::ZeroDuration());
}

absl::StatusOr<v1::Job> JobManager::Submit(const v1::JobSpec& spec, const std::string& owner) {
  if (!accepting_) return absl::UnavailableError("server is shutting down");
  const Family* family = families_->ForProblem(spec.problem_case());
  if (family == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("problem: set one of: ", families_->problem_names()));
  }
  if (!spec.idempotency_key().empty()) {
    if (auto existing = backend_->FindByIdempotencyKey(owner, spec.idempotency_key())) {
      return *existing;
    }
  }
  if (!owner.empty()) {
    absl::Status quota = CheckQueuedQuota(owner);
    if (!quota.ok()) return quota;
  }
  const absl::Time now = absl::Now();
  if (spec.has_deadline() && TimeUtil::DurationToNanoseconds(spec.deadline()) <= 0) {
    return absl::InvalidArgumentError("deadline: must be positive");
  }
  auto work = family->Prepare(spec, PrepareContext{blobs_, options_.data_root, owner});
  if (!work.ok()) return work.status();
  if (absl::Status size = CheckProblemSize(*family, **work); !size.ok()) return size;

  // The job reads its metadata and scheduling record from `spec` here; the
  // problem data lives in `work` from here on.
  auto job = std::make_shared<Job>(store_.NewId(), store_.NextSeq(), spec, family,
                                   *std::move(work), now, owner);
  return backend_->Submit(spec, std::move(job));
}

std::pair<std::shared_ptr<Job>, absl::Status> JobManager::Rebuild(const JobRecord& record,
                                                                  const Family& family,
                                                                  JobLog* log) {
  const PrepareContext context{blobs_, options_.data_root, record.job.owner()};
  auto work = family.Prepare(record.spec, context);
  absl::Status status = work.status();
  if (status.ok()) status = CheckProblemSize(family, **work);
  auto job = std::make_shared<Job>(record, &family, status.ok() ? *std::move(work) : nullptr, log,
                                   absl::Now());
  store_.Restore(job);
  return {std::move(job), std::move(status)};
}

absl::Status JobManager::Enqueue(const Job& job, absl::Time now) {
  WorkItem item;
  static_cast<SchedulingRecord&>(item) = job.scheduling();
  item.job_id = job.id();
  item.enqueue_time = now;
  return scheduler_->Enqueue(std::move(item));
}

absl::StatusOr<v1::Job> JobManager::Get(const std::string& job_id) const {
  return backend_->Get(job_id);
}

absl::StatusOr<std::string> JobManager::Owner(const std::string& job_id) const {
  if (auto job = store_.Find(job_id)) return job->owner();
  auto view = Get(job_id);
  if (!view.ok()) return view.status();
  return view->owner();
}

absl::Status JobManager::CheckProblemSize(const Family& family, const PreparedJob& work) const {
  const SizeLimit& limit = family.info().size_limit;
  auto set = options_.max_problem_size.find(std::string(limit.flag));
  const int64_t max = set == options_.max_problem_size.end() ? limit.default_max : set->second;
  if (work.ProblemSize() <= max) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(family.name(), ": a problem of ",
                                                   work.ProblemSize(), " ", limit.unit,
                                                   " is over the limit of ", max, " (--",
                                                   limit.flag, ")"));
}

absl::Status JobManager::CheckQueuedQuota(const std::string& owner) const {
  // More than one under the quota means at the quota.
  auto full = backend_->QueuedOver(owner, options_.max_queued_jobs_per_token - 1);
  if (!full.ok()) return full.status();
  if (!*full) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "token ", owner, " has ", options_.max_queued_jobs_per_token,
      " queued jobs, the most --max_queued_jobs_per_token allows"));
}

absl::StatusOr<v1::ListJobsResponse> JobManager::List(const v1::ListJobsRequest& req,
                                                      const std::string* owner) const {
  JobStore::Filter filter;
  filter.owner = owner;
  filter.state = req.state();
  filter.family = req.family();
  if (req.page_size() < 0) return absl::InvalidArgumentError("page_size: must be non-negative");
  filter.limit = req.page_size() == 0 ? kDefaultPageSize : std::min(req.page_size(), kMaxPageSize);
  if (!req.page_token().empty() && !absl::SimpleAtoi(req.page_token(), &filter.after_seq)) {
    return absl::InvalidArgumentError("page_token: not a token from a previous ListJobs");
  }
  return backend_->List(filter);
}

std::optional<v1::Job> JobManager::CancelLocal(const std::string& job_id) {
  auto job = store_.Find(job_id);
  if (job == nullptr) return std::nullopt;
  if (scheduler_->Remove(job_id)) {
    FinishJob(*job, {absl::CancelledError("cancelled before it ran"), std::nullopt, 0});
  } else {
    job->RequestCancel();  // a running solver sees it at its next iteration
  }
  return job->Snapshot();
}

absl::StatusOr<v1::Job> JobManager::Cancel(const std::string& job_id) {
  return backend_->Cancel(job_id);
}

absl::Status JobManager::Watch(const std::string& job_id, int64_t from_event,
                               const std::function<bool(const v1::JobEvent&)>& emit,
                               const std::function<bool()>& stop) const {
  if (from_event < 0) return absl::InvalidArgumentError("from_event: must be non-negative");
  return backend_->Watch(job_id, from_event, emit, stop);
}

void JobManager::UpdateGauges() {
  // A shared store's queue depth is the cluster's, which the janitor sets.
  if (!backend_->reports_queue_depth()) metrics_->SetQueueDepth(scheduler_->queue_depth());
  metrics_->SetRunningJobs(scheduler_->running_items());
  for (const auto& [device, budget] : budgets_) {
    metrics_->SetDeviceMemoryUsed(device, scheduler_->memory_in_use(device));
  }
}

void JobManager::JanitorLoop() {
  // Often enough to renew a lease three times before it lapses.
  const absl::Duration period = std::min(absl::Seconds(1), options_.lease / 3);
  while (!stop_janitor_.WaitForNotificationWithTimeout(period)) {
    const absl::Time now = absl::Now();
    backend_->Tend(now);
    store_.Sweep(now);
    blobs_.Sweep(now);
    UpdateGauges();
  }
}

void JobManager::Shutdown(absl::Duration grace) {
  if (backend_ == nullptr) return;
  backend_->StopTaking();
  // A journal or the shared store keeps queued and interrupted jobs for the
  // next start or another replica.
  const bool durable = backend_->keeps_unfinished();
  for (const WorkItem& item : scheduler_->Drain()) {
    if (durable) continue;  // still queued in the journal: the next start runs it
    if (auto job = store_.Find(item.job_id)) {
      FinishJob(*job, {absl::CancelledError("server shutting down"), std::nullopt, 0});
    }
  }
  const absl::Time give_up = absl::Now() + grace;
  while (scheduler_->running_items() > 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  JobStore::Filter all;
  all.state = v1::JOB_STATE_RUNNING;
  all.limit = INT32_MAX;
  bool more = false;
  for (const auto& job : store_.List(all, &more)) {
    if (durable) {
      job->Interrupt();
    } else {
      job->RequestCancel();
    }
  }
  scheduler_->Stop();
  if (!stop_janitor_.HasBeenNotified()) stop_janitor_.Notify();
  if (janitor_.joinable()) janitor_.join();
  absl::Status flushed = backend_->Close();
  if (!flushed.ok()) std::fprintf(stderr, "solverd: %s\n", flushed.ToString().c_str());
  UpdateGauges();
  // Jobs that are not over here (kept for the next start, or handed to
  // other replicas) are watched elsewhere from now on.
  watches_closing_ = true;
}

absl::Status JobManager::WatchMovedAway(const std::string& job_id, int64_t next) const {
  return absl::UnavailableError(absl::StrCat(
      "this replica is shutting down: watch job ", job_id, " again from event ", next,
      " ", backend_->resume_where()));
}

}  // namespace solverd::server
