// Scheduler: the queue between submission and the lanes.
//
// Items wait in one queue ordered by priority (higher first), FIFO within a
// priority. Each lane (a CPU worker or a CUDA stream) has a thread that
// takes the best item it may run (device preference, memory budget of its
// device), gathers queued items with the same batch key into one batch of
// up to max_batch (waiting at most max_queue_delay for it to fill), and
// hands the batch to the RunBatch callback. Items whose deadline passes
// while queued are removed and handed to the Expire callback instead.
// The scheduler knows nothing of jobs or families: only WorkItems.
// Thread-safe; mu_ guards the queue, memory accounting and counters.
#ifndef SOLVERD_SERVER_SCHEDULER_H_
#define SOLVERD_SERVER_SCHEDULER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/lane.h"
#include "server/scheduling.h"

namespace solverd::server {

// A queued job as the scheduler sees it: its id and scheduling record.
struct WorkItem : SchedulingRecord {
  std::string job_id;
  absl::Time enqueue_time;  // set by Enqueue when not set
  uint64_t seq = 0;         // set by Enqueue
};

class Scheduler {
 public:
  struct Options {
    int max_queue = 10000;
    int max_batch = 1;
    absl::Duration max_queue_delay = absl::ZeroDuration();
    // Memory each device may lend to running work, by Device::ToString().
    std::map<std::string, int64_t> memory_budget_bytes;
  };
  // Called on the lane's thread; returns when the batch is done.
  using RunBatchFn = std::function<void(const Lane&, std::vector<WorkItem>)>;
  // Called (without locks held) for items whose deadline passed in the queue.
  using ExpireFn = std::function<void(const WorkItem&)>;
  // Called (without locks held) after the queue or the running set changed.
  using ChangeFn = std::function<void()>;

  // Starts one thread per lane. INVALID_ARGUMENT for an empty lane list or
  // a lane whose device has no memory budget.
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(
      Options options, std::vector<Lane> lanes, RunBatchFn run, ExpireFn expire,
      ChangeFn on_change = [] {});
  ~Scheduler();  // Stop()s

  // Queues `item`. RESOURCE_EXHAUSTED when the queue is full or the item
  // can never fit a lane's memory budget; FAILED_PRECONDITION when no lane
  // serves its device class; UNAVAILABLE after Stop().
  absl::Status Enqueue(WorkItem item);
  // Whether some lane could ever run `record` (the first two checks of
  // Enqueue), without queuing anything.
  absl::Status Admissible(const SchedulingRecord& record) const;
  // Removes a queued item; false if it is not queued (running or unknown).
  bool Remove(const std::string& job_id);
  // Removes and returns everything queued (for shutdown).
  std::vector<WorkItem> Drain();
  // Rejects new items, lets running batches finish, joins the threads.
  void Stop();

  int queue_depth() const;
  int running_items() const;
  // Memory lent to running work on `device` (Device::ToString()).
  int64_t memory_in_use(const std::string& device) const;

 private:
  struct Order {
    bool operator()(const WorkItem& a, const WorkItem& b) const {
      if (a.priority != b.priority) return a.priority > b.priority;
      return a.seq < b.seq;
    }
  };
  using Queue = std::set<WorkItem, Order>;

  Scheduler(Options options, std::vector<Lane> lanes, RunBatchFn run, ExpireFn expire,
            ChangeFn on_change);
  void LaneLoop(const Lane& lane);
  void ExpiryLoop();
  static bool Serves(const Lane& lane, DeviceClass device);
  // The batch `lane` should run now; empty if none. Sets *wake to when it
  // is worth looking again (a batch filling up).
  std::vector<WorkItem> TakeBatchLocked(const Lane& lane, absl::Time now, absl::Time* wake)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<WorkItem> TakeExpiredLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  const std::vector<Lane> lanes_;
  const RunBatchFn run_;
  const ExpireFn expire_;
  const ChangeFn on_change_;

  mutable absl::Mutex mu_;
  absl::CondVar changed_;  // queue, memory or stopping_ changed
  Queue queue_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, int64_t> memory_used_ ABSL_GUARDED_BY(mu_);
  int running_items_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::vector<std::thread> threads_;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_SCHEDULER_H_
