#include "server/shared_jobs.h"

#include <unistd.h>

#include <cstdio>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/job_manager.h"
#include "server/store/pg_blob_store.h"

namespace solverd::server {
namespace {

// host-pid-random: unique per process, and readable in the jobs table.
std::string ReplicaName() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  absl::BitGen gen;
  return absl::StrFormat("%s-%d-%08x", host, getpid(), absl::Uniform<uint32_t>(gen));
}

constexpr int kExpiredPerTurn = 64;
constexpr absl::Duration kSweepInterval = absl::Minutes(1);

}  // namespace

SharedJobs::~SharedJobs() {
  StopTaking();
  ready_ = false;
}

absl::Status SharedJobs::Start() {
  const ServerOptions& options = m_.options_;
  PgJobStore::Options o;
  o.connection.uri = options.store;
  o.connection.password_file = options.store_password_file;
  o.replica = ReplicaName();
  o.lease = options.lease;
  o.on_queued = [this] { WakeClaimer(); };
  o.on_cancel = [this](const std::string& id) {
    if (ready_) m_.CancelLocal(id);
  };
  o.observe = [metrics = m_.metrics_](const char* operation, double seconds) {
    metrics->StoreOperation(operation, seconds);
  };
  o.on_durable = [this](const std::string& id, int64_t events) {
    if (auto job = m_.store_.Find(id)) job->MarkDurable(events);
  };
  auto store = PgJobStore::Open(o);
  if (!store.ok()) return store.status();
  shared_ = *std::move(store);
  PgBlobStore::Options b;
  b.connection = o.connection;
  b.quota_bytes = options.blob_quota_bytes;
  b.owner_quota_bytes = options.max_blob_bytes_per_token;
  b.ttl = options.blob_ttl;
  auto blobs = PgBlobStore::Open(std::move(b));
  if (!blobs.ok()) return blobs.status();
  m_.blobs_.ShareThrough(*std::move(blobs));
  std::fprintf(stderr, "solverd: shared store %s, replica %s, lease %s\n",
               shared_->name().c_str(), shared_->replica().c_str(),
               absl::FormatDuration(options.lease).c_str());
  ready_ = true;
  claimer_ = std::thread([this] { ClaimLoop(); });
  return absl::OkStatus();
}

int SharedJobs::ClaimCapacity() const {
  return m_.lanes_ * std::max(1, m_.options_.max_batch);
}

absl::StatusOr<v1::Job> SharedJobs::Submit(const v1::JobSpec& spec, std::shared_ptr<Job> job) {
  // Refused here rather than left in the queue for a replica like this one.
  if (absl::Status s = m_.scheduler_->Admissible(job->scheduling()); !s.ok()) return s;
  PgJobStore::NewJob row;
  row.view = job->Snapshot();
  job->ReadEvents(0, absl::ZeroDuration(), &row.events);
  row.problem = ProblemOnly(spec).SerializeAsString();
  row.scheduling = job->scheduling();
  row.max_queue = m_.options_.max_queue;
  // The replica a client chose runs the job when it has room, which saves
  // a claim; the others take it from the queue otherwise.
  row.lease_here = m_.scheduler_->queue_depth() < ClaimCapacity();
  uint64_t seq = 0;
  bool added = false;
  auto stored = shared_->Insert(row, &seq, &added);
  if (!stored.ok()) return stored.status();
  if (!added) return stored;  // the job already under this idempotency key
  m_.metrics_->JobSubmitted(std::string(job->family()->name()));
  if (!row.lease_here) return stored;
  // Rebuilt under the store's submission order, which the local indexes
  // share with the jobs this replica claims.
  JobRecord record{seq, ProblemOnly(spec), row.view, row.events};
  auto local = std::make_shared<Job>(record, job->family(), job->TakeWork(), nullptr, absl::Now());
  local->LogTo(&shared_->log());
  m_.store_.Restore(local);
  if (absl::Status queued = m_.Enqueue(*local, absl::Now()); !queued.ok()) {
    m_.FinishJob(*local, {queued, std::nullopt, 0});
  }
  m_.UpdateGauges();
  return stored;
}

absl::StatusOr<v1::Job> SharedJobs::Get(const std::string& job_id) {
  auto local = m_.store_.Find(job_id);
  if (local != nullptr && local->StoredFinished()) return local->Snapshot();
  return shared_->Get(job_id);
}

absl::StatusOr<v1::ListJobsResponse> SharedJobs::List(const JobStore::Filter& filter) {
  std::vector<uint64_t> seqs;
  bool more = false;
  auto jobs = shared_->List(filter, &seqs, &more);
  if (!jobs.ok()) return jobs.status();
  v1::ListJobsResponse out;
  for (v1::Job& job : *jobs) *out.add_jobs() = std::move(job);
  if (more && !seqs.empty()) out.set_next_page_token(absl::StrCat(seqs.back()));
  return out;
}

absl::StatusOr<bool> SharedJobs::QueuedOver(const std::string& owner, int limit) {
  auto queued = shared_->CountQueued(&owner);
  if (!queued.ok()) return queued.status();
  return *queued > limit;
}

absl::StatusOr<v1::Job> SharedJobs::Cancel(const std::string& job_id) {
  if (auto local = m_.CancelLocal(job_id)) return *local;
  auto holder = shared_->RequestCancel(job_id);
  if (absl::IsFailedPrecondition(holder.status())) return shared_->Get(job_id);  // finished
  if (!holder.ok()) return holder.status();
  if (holder->empty()) {
    // Nobody holds it: take it and end it here, then show it as ended.
    auto claimed = shared_->Claim(1, {job_id});
    if (!claimed.ok()) return claimed.status();
    for (PgJobStore::Claimed& c : *claimed) Adopt(std::move(c));
    shared_->log().Flush(absl::Seconds(5)).IgnoreError();
  }
  return shared_->Get(job_id);
}

absl::Status SharedJobs::Watch(const std::string& job_id, int64_t from_event,
                               const std::function<bool(const v1::JobEvent&)>& emit,
                               const std::function<bool()>& stop) {
  auto waiter = shared_->WatchEvents(job_id);
  int64_t next = from_event;
  for (;;) {
    std::vector<v1::JobEvent> events;
    bool done = false;
    absl::Status read = absl::OkStatus();
    // A job running or cached here is followed from memory, as far as the
    // store holds it: the same events any replica would stream, without a
    // query per wake-up. Otherwise, or once its lease is gone, from the
    // store.
    auto local = m_.store_.Find(job_id);
    const bool followed_here =
        local != nullptr &&
        local->ReadDurableEvents(next, PgJobStore::kPollInterval, &events, &done);
    if (!followed_here) read = shared_->ReadEvents(job_id, next, &events, &done);
    // Through a store outage the watcher waits for it, as for any event.
    if (!read.ok() && !absl::IsUnavailable(read)) return read;
    for (const v1::JobEvent& e : events) {
      if (!emit(e)) return absl::OkStatus();
      next = e.number() + 1;
    }
    if ((read.ok() && done) || stop()) return absl::OkStatus();
    if (m_.watches_closing_) return m_.WatchMovedAway(job_id, next);
    if (events.empty() && !followed_here) waiter->Wait(PgJobStore::kPollInterval);
  }
}

void SharedJobs::Adopt(PgJobStore::Claimed claimed) {
  const JobRecord& record = claimed.record;
  const Family* family = m_.families_->ForProblem(record.spec.problem_case());
  if (family == nullptr) {  // a newer replica's family: its lease lapses for another
    std::fprintf(stderr, "solverd: job %s has no family this replica knows; left for others\n",
                 record.job.id().c_str());
    return;
  }
  const bool rerun = record.job.state() == v1::JOB_STATE_RUNNING || record.job.attempt() > 0;
  auto [job, status] = m_.Rebuild(record, *family, &shared_->log());
  if (rerun) m_.metrics_->LeaseExpired();
  m_.metrics_->Claimed();
  if (claimed.cancel_requested) {
    m_.FinishJob(*job, {absl::CancelledError("cancelled before it ran"), std::nullopt, 0});
    return;
  }
  if (status.ok()) status = m_.Enqueue(*job, absl::Now());
  if (!status.ok()) m_.FinishJob(*job, {status, std::nullopt, 0});
}

void SharedJobs::WakeClaimer() {
  absl::MutexLock lock(&claim_mu_);
  claim_wanted_ = true;
  claim_cv_.Signal();
}

void SharedJobs::StopTaking() {
  {
    absl::MutexLock lock(&claim_mu_);
    stop_claiming_ = true;
    claim_cv_.SignalAll();
  }
  if (claimer_.joinable()) claimer_.join();
}

void SharedJobs::ClaimLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&claim_mu_);
      if (!claim_wanted_ && !stop_claiming_) {
        claim_cv_.WaitWithTimeout(&claim_mu_, PgJobStore::kPollInterval);
      }
      if (stop_claiming_) return;
      claim_wanted_ = false;
    }
    const int room = ClaimCapacity() - m_.scheduler_->queue_depth();
    if (room <= 0) continue;
    auto claimed = shared_->Claim(room);
    if (!claimed.ok()) continue;  // the store is away: the janitor reports it
    const bool full = static_cast<int>(claimed->size()) == room;
    for (PgJobStore::Claimed& c : *claimed) Adopt(std::move(c));
    if (full) WakeClaimer();  // there may be more: look again once room frees
    m_.UpdateGauges();
  }
}

void SharedJobs::DropLostLeases(const std::vector<std::string>& before,
                                const absl::flat_hash_set<std::string>& held) {
  for (const std::string& id : before) {
    if (held.contains(id)) continue;
    auto job = m_.store_.Find(id);
    if (job == nullptr || job->terminal()) continue;  // it ended here meanwhile
    // Another replica re-runs it (or already ended it): what this one
    // would still write is refused by the store, so it stops here unlogged
    // and forgotten.
    std::fprintf(stderr, "solverd: lease on job %s lapsed to another replica; stopped here\n",
                 id.c_str());
    job->LogTo(nullptr);
    m_.CancelLocal(id);
    m_.store_.Remove(id);
  }
}

void SharedJobs::Tend(absl::Time now) {
  // Taken before the heartbeat so that a job submitted meanwhile does not
  // look lost.
  const std::vector<std::string> running_here = m_.store_.Ids();
  auto leases = shared_->Heartbeat();
  // A deadlock or serialization failure is the store answering: try again
  // at the next turn, well inside the lease.
  if (absl::IsAborted(leases.status())) return;
  const bool up = leases.ok();
  if (up != up_.exchange(up)) {
    std::fprintf(stderr, "solverd: store %s %s\n", shared_->name().c_str(),
                 up ? "answers again: serving" : "does not answer: not serving");
  }
  m_.metrics_->SetStoreUp(up);
  const int64_t reconnects = shared_->reconnects();
  m_.metrics_->StoreReconnects(reconnects - reconnects_seen_);
  reconnects_seen_ = reconnects;
  if (!up) return;
  DropLostLeases(running_here, leases->held);
  for (const std::string& id : leases->cancel_requested) m_.CancelLocal(id);
  if (auto expired = shared_->ExpiredQueued(kExpiredPerTurn); expired.ok() && !expired->empty()) {
    if (auto claimed = shared_->Claim(kExpiredPerTurn, *expired); claimed.ok()) {
      for (PgJobStore::Claimed& c : *claimed) Adopt(std::move(c));  // the scheduler expires them
    }
  }
  if (auto depth = shared_->CountQueued(nullptr); depth.ok()) {
    m_.metrics_->SetQueueDepth(static_cast<int>(*depth));
  }
  if (now - last_sweep_ >= kSweepInterval) {
    last_sweep_ = now;
    shared_->Sweep(m_.options_.result_ttl).IgnoreError();
  }
}

absl::Status SharedJobs::Close() {
  if (shared_ == nullptr) return absl::OkStatus();  // it never opened
  absl::Status flushed = shared_->log().Flush(absl::Seconds(5));
  if (flushed.ok()) flushed = shared_->ReleaseLeases();
  return flushed;
}

}  // namespace solverd::server
