#include "server/scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace solverd::server {

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(
    Options options, std::vector<Lane> lanes, RunBatchFn run, ExpireFn expire,
    ChangeFn on_change) {
  if (lanes.empty()) return absl::InvalidArgumentError("scheduler: no lanes");
  for (const Lane& lane : lanes) {
    if (!options.memory_budget_bytes.contains(lane.device.ToString())) {
      return absl::InvalidArgumentError(
          absl::StrCat("scheduler: no memory budget for ", lane.device.ToString()));
    }
  }
  if (options.max_batch < 1) options.max_batch = 1;
  return std::unique_ptr<Scheduler>(new Scheduler(std::move(options), std::move(lanes),
                                                  std::move(run), std::move(expire),
                                                  std::move(on_change)));
}

Scheduler::Scheduler(Options options, std::vector<Lane> lanes, RunBatchFn run,
                     ExpireFn expire, ChangeFn on_change)
    : options_(std::move(options)), lanes_(std::move(lanes)), run_(std::move(run)),
      expire_(std::move(expire)), on_change_(std::move(on_change)) {
  for (const Lane& lane : lanes_) threads_.emplace_back([this, &lane] { LaneLoop(lane); });
  threads_.emplace_back([this] { ExpiryLoop(); });
}

Scheduler::~Scheduler() { Stop(); }

bool Scheduler::Serves(const Lane& lane, DeviceClass device) {
  switch (device) {
    case DeviceClass::kAny: return true;
    case DeviceClass::kCpu: return !lane.device.is_cuda();
    case DeviceClass::kCuda: return lane.device.is_cuda();
  }
  return false;
}

absl::Status Scheduler::Admissible(const SchedulingRecord& item) const {
  bool served = false, fits = false;
  for (const Lane& lane : lanes_) {
    if (!Serves(lane, item.device)) continue;
    served = true;
    fits |= item.memory_bytes <= options_.memory_budget_bytes.at(lane.device.ToString());
  }
  if (!served) {
    return absl::FailedPreconditionError(
        "device: no lane of this server runs the requested device kind");
  }
  if (!fits) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "job needs ", item.memory_bytes, " bytes, more than any device's memory budget"));
  }
  return absl::OkStatus();
}

absl::Status Scheduler::Enqueue(WorkItem item) {
  if (absl::Status admissible = Admissible(item); !admissible.ok()) return admissible;
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("server is shutting down");
  if (static_cast<int>(queue_.size()) >= options_.max_queue) {
    return absl::ResourceExhaustedError(
        absl::StrCat("queue is full (--max-queue=", options_.max_queue, ")"));
  }
  item.seq = next_seq_++;
  if (item.enqueue_time == absl::Time()) item.enqueue_time = absl::Now();
  queue_.insert(std::move(item));
  changed_.SignalAll();
  return absl::OkStatus();
}

bool Scheduler::Remove(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if (it->job_id == job_id) {
      queue_.erase(it);
      changed_.SignalAll();
      return true;
    }
  }
  return false;
}

std::vector<WorkItem> Scheduler::Drain() {
  absl::MutexLock lock(&mu_);
  std::vector<WorkItem> out(queue_.begin(), queue_.end());
  queue_.clear();
  return out;
}

void Scheduler::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    changed_.SignalAll();
  }
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

int Scheduler::queue_depth() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(queue_.size());
}

int Scheduler::running_items() const {
  absl::MutexLock lock(&mu_);
  return running_items_;
}

int64_t Scheduler::memory_in_use(const std::string& device) const {
  absl::MutexLock lock(&mu_);
  auto it = memory_used_.find(device);
  return it == memory_used_.end() ? 0 : it->second;
}

std::vector<WorkItem> Scheduler::TakeBatchLocked(const Lane& lane, absl::Time now,
                                                 absl::Time* wake) {
  const std::string device = lane.device.ToString();
  const int64_t free_bytes = options_.memory_budget_bytes.at(device) - memory_used_[device];
  auto head = queue_.begin();
  while (head != queue_.end() && !Serves(lane, head->device)) ++head;
  // Strict priority: a head that does not fit yet blocks this lane.
  if (head == queue_.end() || head->memory_bytes > free_bytes) return {};

  std::vector<Queue::iterator> members{head};
  int64_t bytes = head->memory_bytes;
  // A CPU lane runs at most one batch member per thread at a time; more
  // would wait their turn marked RUNNING, out of reach of idle lanes.
  const int max_batch = lane.device.is_cuda()
                            ? options_.max_batch
                            : std::min(options_.max_batch, std::max(1, lane.cpu_threads));
  if (!head->batch_key.empty()) {
    for (auto it = std::next(head); it != queue_.end() &&
         static_cast<int>(members.size()) < max_batch; ++it) {
      if (it->batch_key == head->batch_key && Serves(lane, it->device) &&
          bytes + it->memory_bytes <= free_bytes) {
        members.push_back(it);
        bytes += it->memory_bytes;
      }
    }
    const absl::Time fill_by = head->enqueue_time + options_.max_queue_delay;
    if (static_cast<int>(members.size()) < max_batch && now < fill_by) {
      *wake = fill_by;  // give the batch a chance to fill
      return {};
    }
  }
  std::vector<WorkItem> batch;
  for (auto it : members) {
    batch.push_back(*it);
    queue_.erase(it);
  }
  memory_used_[device] += bytes;
  running_items_ += static_cast<int>(batch.size());
  return batch;
}

void Scheduler::LaneLoop(const Lane& lane) {
  const std::string device = lane.device.ToString();
  for (;;) {
    std::vector<WorkItem> batch;
    {
      absl::MutexLock lock(&mu_);
      while (!stopping_) {
        absl::Time wake = absl::InfiniteFuture();
        batch = TakeBatchLocked(lane, absl::Now(), &wake);
        if (!batch.empty()) break;
        changed_.WaitWithDeadline(&mu_, wake);
      }
      if (batch.empty()) return;  // stopping
    }
    int64_t bytes = 0;
    for (const WorkItem& item : batch) bytes += item.memory_bytes;
    const int count = static_cast<int>(batch.size());
    on_change_();
    run_(lane, std::move(batch));
    {
      absl::MutexLock lock(&mu_);
      memory_used_[device] -= bytes;
      running_items_ -= count;
      changed_.SignalAll();
    }
    on_change_();
  }
}

std::vector<WorkItem> Scheduler::TakeExpiredLocked(absl::Time now) {
  std::vector<WorkItem> expired;
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->deadline <= now) {
      expired.push_back(*it);
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  return expired;
}

void Scheduler::ExpiryLoop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    std::vector<WorkItem> expired = TakeExpiredLocked(absl::Now());
    if (!expired.empty()) {
      mu_.Unlock();
      for (const WorkItem& item : expired) expire_(item);
      mu_.Lock();
      continue;
    }
    absl::Time next = absl::InfiniteFuture();
    for (const WorkItem& item : queue_) next = std::min(next, item.deadline);
    changed_.WaitWithDeadline(&mu_, next);
  }
}

}  // namespace solverd::server
