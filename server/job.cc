#include "server/job.h"

#include <utility>

#include "google/protobuf/util/time_util.h"

namespace solverd::server {
namespace {

google::protobuf::Timestamp ToProto(absl::Time t) {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

}  // namespace

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
  job_.set_priority(spec.priority());
  job_.set_idempotency_key(spec.idempotency_key());
  job_.set_owner(owner_);
  *job_.mutable_labels() = spec.labels();
  *job_.mutable_create_time() = ToProto(now);
  job_.set_state(v1::JOB_STATE_QUEUED);
  v1::JobEvent event;
  event.mutable_state()->set_state(v1::JOB_STATE_QUEUED);
  AppendLocked(std::move(event), now);
}

void Job::AppendLocked(v1::JobEvent event, absl::Time now) {
  event.set_number(static_cast<int64_t>(events_.size()));
  event.set_job_id(id_);
  *event.mutable_time() = ToProto(now);
  events_.push_back(std::move(event));
  job_.set_event_count(static_cast<int64_t>(events_.size()));
}

bool Job::MarkRunning(const std::string& device, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (job_.state() != v1::JOB_STATE_QUEUED) return false;
  job_.set_state(v1::JOB_STATE_RUNNING);
  job_.set_device(device);
  start_time_ = now;
  *job_.mutable_start_time() = ToProto(now);
  v1::JobEvent event;
  event.mutable_state()->set_state(v1::JOB_STATE_RUNNING);
  event.mutable_state()->set_device(device);
  AppendLocked(std::move(event), now);
  return true;
}

void Job::AppendProgress(const v1::Progress& progress, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (IsTerminal(job_.state()) || progress_events_ >= kMaxProgressEvents) return;
  ++progress_events_;
  v1::JobEvent event;
  *event.mutable_progress() = progress;
  AppendLocked(std::move(event), now);
}

bool Job::Finish(v1::JobState state, const absl::Status& error,
                 std::optional<v1::JobResult> result, absl::Time now, double* run_seconds) {
  {
    absl::MutexLock lock(&mu_);
    if (IsTerminal(job_.state())) return false;
    if (run_seconds != nullptr) {
      *run_seconds = start_time_ < now ? absl::ToDoubleSeconds(now - start_time_) : 0.0;
    }
    job_.set_state(state);
    job_.set_error_code(static_cast<int>(error.code()));
    job_.set_error_message(std::string(error.message()));
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
  }
  work_.reset();
  return true;
}

bool Job::RequestCancel() {
  if (terminal()) return false;
  cancel_.Cancel();
  return true;
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
