#include "server/job.h"

#include <utility>

#include "google/protobuf/util/time_util.h"

namespace solverd::server {
namespace {

using google::protobuf::util::TimeUtil;

google::protobuf::Timestamp ToProto(absl::Time t) {
  return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixNanos(TimeUtil::TimestampToNanoseconds(t));
}

}  // namespace

v1::JobSpec ProblemOnly(const v1::JobSpec& spec) {
  v1::JobSpec out;
  const auto* field = v1::JobSpec::descriptor()->FindFieldByNumber(spec.problem_case());
  if (field != nullptr) {
    out.GetReflection()->MutableMessage(&out, field)->CopyFrom(
        spec.GetReflection()->GetMessage(spec, field));
  }
  return out;
}

bool IsTerminal(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

Job::Job(std::string id, uint64_t seq, const v1::JobSpec& spec, const Family* family,
         std::unique_ptr<PreparedJob> work, absl::Time now, std::string owner)
    : id_(std::move(id)), seq_(seq), family_(family), owner_(std::move(owner)),
      idempotency_key_(spec.idempotency_key()), create_time_(now), work_(std::move(work)) {
  absl::MutexLock lock(&mu_);
  job_.set_id(id_);
  job_.set_family(std::string(family->name()));
  SetSchedulingFields(spec, now, &job_);
  job_.set_idempotency_key(spec.idempotency_key());
  job_.set_owner(owner_);
  *job_.mutable_labels() = spec.labels();
  *job_.mutable_create_time() = ToProto(now);
  job_.set_state(v1::JOB_STATE_QUEUED);
  if (work_ != nullptr) scheduling_ = MakeSchedulingRecord(job_, *work_);
  v1::JobEvent event;
  event.mutable_state()->set_state(v1::JOB_STATE_QUEUED);
  AppendLocked(std::move(event), now);
}

Job::Job(const JobRecord& record, const Family* family, std::unique_ptr<PreparedJob> work,
         JobLog* journal, absl::Time now)
    : id_(record.job.id()), seq_(record.seq), family_(family), owner_(record.job.owner()),
      idempotency_key_(record.job.idempotency_key()),
      create_time_(FromProto(record.job.create_time())), work_(std::move(work)) {
  absl::MutexLock lock(&mu_);
  job_ = record.job;
  events_ = record.events;
  for (const v1::JobEvent& e : events_) {
    if (e.has_progress()) ++progress_events_;
    if (e.has_result()) *job_.mutable_result() = e.result();
  }
  job_.set_event_count(static_cast<int64_t>(events_.size()));
  journal_ = journal;
  durable_events_ = static_cast<int64_t>(events_.size());
  if (IsTerminal(job_.state())) {
    finish_time_ = FromProto(job_.finish_time());
    work_.reset();
    return;
  }
  if (work_ != nullptr) scheduling_ = MakeSchedulingRecord(job_, *work_);
  const bool had_started = job_.state() == v1::JOB_STATE_RUNNING || job_.attempt() > 0;
  job_.set_state(v1::JOB_STATE_QUEUED);
  job_.clear_start_time();
  job_.clear_device();
  if (had_started) {
    v1::JobEvent event;
    event.mutable_state()->set_state(v1::JOB_STATE_QUEUED);
    event.mutable_state()->set_attempt(job_.attempt() + 1);
    AppendLocked(std::move(event), now);
  }
  JournalJobLocked();
}

absl::Status Job::Persist(JobJournal* journal, std::string problem) {
  JobJournal::Ticket ticket;
  {
    absl::MutexLock lock(&mu_);
    ticket = journal->AddJob(seq_, std::move(problem), job_, events_);
    journal_ = journal;
  }
  return journal->WaitDurable(ticket);
}

void Job::LogTo(JobLog* log) {
  absl::MutexLock lock(&mu_);
  journal_ = log;
  durable_events_ = static_cast<int64_t>(events_.size());
}

void Job::MarkDurable(int64_t events) {
  absl::MutexLock lock(&mu_);
  durable_events_ = std::max(durable_events_, events);
}

bool Job::StoredFinished() const {
  absl::MutexLock lock(&mu_);
  return IsTerminal(job_.state()) && journal_ != nullptr &&
         durable_events_ >= static_cast<int64_t>(events_.size());
}

bool Job::logging() const {
  absl::MutexLock lock(&mu_);
  return journal_ != nullptr;
}

bool Job::ReadDurableEvents(int64_t from_event, absl::Duration timeout,
                            std::vector<v1::JobEvent>* out, bool* done) const {
  absl::MutexLock lock(&mu_);
  const int64_t first = std::max<int64_t>(0, from_event);
  auto has_news = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return durable_events_ > first || journal_ == nullptr;
  };
  mu_.AwaitWithTimeout(absl::Condition(&has_news), timeout);
  if (journal_ == nullptr) return false;  // no longer this replica's to tell
  const int64_t end = std::min<int64_t>(durable_events_, events_.size());
  for (int64_t i = first; i < end; ++i) out->push_back(events_[i]);
  *done = IsTerminal(job_.state()) && end == static_cast<int64_t>(events_.size());
  return true;
}

void Job::AppendLocked(v1::JobEvent event, absl::Time now) {
  event.set_number(static_cast<int64_t>(events_.size()));
  event.set_job_id(id_);
  *event.mutable_time() = ToProto(now);
  if (journal_ != nullptr) unjournaled_.push_back(event);
  events_.push_back(std::move(event));
  job_.set_event_count(static_cast<int64_t>(events_.size()));
}

void Job::JournalJobLocked() {
  if (journal_ != nullptr) journal_->PutJob(job_, unjournaled_);
  unjournaled_.clear();
}

bool Job::MarkRunning(const std::string& device, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (job_.state() != v1::JOB_STATE_QUEUED) return false;
  job_.set_state(v1::JOB_STATE_RUNNING);
  job_.set_device(device);
  job_.set_attempt(job_.attempt() + 1);
  start_time_ = now;
  *job_.mutable_start_time() = ToProto(now);
  v1::JobEvent event;
  event.mutable_state()->set_state(v1::JOB_STATE_RUNNING);
  event.mutable_state()->set_device(device);
  AppendLocked(std::move(event), now);
  JournalJobLocked();
  return true;
}

void Job::AppendProgress(const v1::Progress& progress, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (IsTerminal(job_.state()) || progress_events_ >= kMaxProgressEvents) return;
  ++progress_events_;
  v1::JobEvent event;
  *event.mutable_progress() = progress;
  AppendLocked(std::move(event), now);
  if (journal_ != nullptr) journal_->PutEvent(unjournaled_.back());
  unjournaled_.clear();
}

bool Job::Finish(v1::JobState state, const absl::Status& error,
                 std::optional<v1::JobResult> result, absl::Time now, double* run_seconds) {
  {
    absl::MutexLock lock(&mu_);
    if (IsTerminal(job_.state())) return false;
    absl::Status shown = error;
    if (interrupted_ && state == v1::JOB_STATE_CANCELLED && journal_ != nullptr) {
      // It stays running in its journal, so the next start re-runs it: this
      // ending is only for the watchers of this process.
      journal_ = nullptr;
      shown = absl::UnavailableError(
          "server shutting down; the job runs again when the server restarts");
    }
    if (run_seconds != nullptr) {
      *run_seconds = start_time_ < now ? absl::ToDoubleSeconds(now - start_time_) : 0.0;
    }
    job_.set_state(state);
    job_.set_error_code(static_cast<int>(shown.code()));
    job_.set_error_message(std::string(shown.message()));
    *job_.mutable_finish_time() = ToProto(now);
    finish_time_ = now;
    if (result.has_value()) {
      *job_.mutable_result() = *result;
      v1::JobEvent event;
      *event.mutable_result() = *std::move(result);
      AppendLocked(std::move(event), now);
    }
    v1::JobEvent event;
    event.mutable_state()->set_state(state);
    event.mutable_state()->set_error_code(job_.error_code());
    event.mutable_state()->set_error_message(job_.error_message());
    event.mutable_state()->set_device(job_.device());
    AppendLocked(std::move(event), now);
    JournalJobLocked();
  }
  work_.reset();
  return true;
}

bool Job::RequestCancel() {
  if (terminal()) return false;
  cancel_.Cancel();
  return true;
}

void Job::Interrupt() {
  {
    absl::MutexLock lock(&mu_);
    if (IsTerminal(job_.state()) || cancel_.cancelled()) return;  // a user's cancel stands
    interrupted_ = true;
  }
  cancel_.Cancel();
}

bool Job::terminal() const {
  absl::MutexLock lock(&mu_);
  return IsTerminal(job_.state());
}

v1::JobState Job::state() const {
  absl::MutexLock lock(&mu_);
  return job_.state();
}

absl::Time Job::finish_time() const {
  absl::MutexLock lock(&mu_);
  return finish_time_;
}

v1::Job Job::Snapshot() const {
  absl::MutexLock lock(&mu_);
  return job_;
}

bool Job::ReadEvents(int64_t from_event, absl::Duration timeout,
                     std::vector<v1::JobEvent>* out) const {
  absl::MutexLock lock(&mu_);
  const int64_t first = std::max<int64_t>(0, from_event);
  auto has_news = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return static_cast<int64_t>(events_.size()) > first || IsTerminal(job_.state());
  };
  mu_.AwaitWithTimeout(absl::Condition(&has_news), timeout);
  for (int64_t i = first; i < static_cast<int64_t>(events_.size()); ++i) {
    out->push_back(events_[i]);
  }
  return IsTerminal(job_.state());
}

}  // namespace solverd::server
