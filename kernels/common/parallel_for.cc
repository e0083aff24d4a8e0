#include "common/parallel_for.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

namespace solverd {
namespace {

// One ParallelFor call: its chunks are claimed by number, by the calling
// thread and by any worker that is free, so a call never waits for a busy
// pool (the caller alone can run every chunk) and nested calls cannot
// deadlock.
struct Batch {
  const std::function<void(int64_t, int64_t)>* body;
  int64_t n, chunk, parts;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};

  bool exhausted() const { return next.load(std::memory_order_relaxed) >= parts; }

  void Work() {
    for (int64_t part; (part = next.fetch_add(1, std::memory_order_relaxed)) < parts;) {
      const int64_t begin = part * chunk, end = std::min(n, begin + chunk);
      if (begin < end) (*body)(begin, end);
      done.fetch_add(1, std::memory_order_release);
    }
  }
};

// Threads that outlive the calls, one per core besides the caller's:
// starting a thread per call cost about 0.14 ms on the 2-core dev VM,
// more than a whole pass of many of the loops this serves.
class WorkerPool {
 public:
  static WorkerPool& Get() {
    static WorkerPool* pool = new WorkerPool();  // never destroyed: workers outlive main()
    return *pool;
  }

  void Share(std::shared_ptr<Batch> batch) {
    const int64_t helpers = batch->parts - 1;  // the caller takes one chunk
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(batch));
    }
    shared_.fetch_add(1, std::memory_order_release);
    for (int64_t k = 0; k < helpers; ++k) cv_.notify_one();
  }

 private:
  WorkerPool() {
    const unsigned workers = std::max(1u, std::thread::hardware_concurrency()) - 1;
    for (unsigned w = 0; w < std::max(1u, workers); ++w) {
      std::thread(&WorkerPool::Loop, this).detach();
    }
  }

  void Loop() {
    for (;;) {
      SpinForWork();
      std::shared_ptr<Batch> batch;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] {
          while (!queue_.empty() && queue_.front()->exhausted()) queue_.pop_front();
          return !queue_.empty();
        });
        batch = queue_.front();
      }
      batch->Work();
    }
  }

  // Solver loops call ParallelFor back to back (a Sinkhorn iteration, a CG
  // step); a worker that slept between calls would wake (~0.1 ms on the
  // dev VM) after the caller had run every chunk itself. So a worker
  // watches for the next call a little while before it sleeps.
  void SpinForWork() {
    const int64_t seen = shared_.load(std::memory_order_acquire);
    const auto until = std::chrono::steady_clock::now() + kSpin;
    while (shared_.load(std::memory_order_acquire) == seen &&
           std::chrono::steady_clock::now() < until) {
      std::this_thread::yield();
    }
  }

  static constexpr std::chrono::microseconds kSpin{200};
  std::atomic<int64_t> shared_{0};  // batches shared so far
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Batch>> queue_;  // guarded by mu_
};

}  // namespace

void ParallelFor(int64_t n, int threads,
                 const std::function<void(int64_t, int64_t)>& body,
                 int64_t min_items_per_thread) {
  if (n <= 0) return;
  int64_t max_useful = std::max<int64_t>(1, n / std::max<int64_t>(1, min_items_per_thread));
  int64_t parts = std::clamp<int64_t>(threads, 1, max_useful);
  if (parts == 1) {
    body(0, n);
    return;
  }
  auto batch = std::make_shared<Batch>();
  batch->body = &body;
  batch->n = n;
  batch->chunk = (n + parts - 1) / parts;
  batch->parts = parts;
  WorkerPool::Get().Share(batch);
  batch->Work();
  // What is left are chunks that workers are running now.
  while (batch->done.load(std::memory_order_acquire) < parts) std::this_thread::yield();
}

int64_t PartCount(int64_t n, int threads, int64_t min_items_per_thread) {
  return std::clamp<int64_t>(threads, 1,
                             std::max<int64_t>(1, n / std::max<int64_t>(1, min_items_per_thread)));
}

void ParallelForParts(int64_t n, int64_t parts,
                      const std::function<void(int64_t, int64_t, int64_t)>& body) {
  const int64_t chunk = (n + parts - 1) / std::max<int64_t>(1, parts);
  ParallelFor(
      parts, static_cast<int>(parts),
      [&](int64_t first, int64_t last) {
        for (int64_t part = first; part < last; ++part) {
          const int64_t begin = std::min(n, part * chunk);
          body(part, begin, std::min(n, begin + chunk));
        }
      },
      /*min_items_per_thread=*/1);
}

}  // namespace solverd
