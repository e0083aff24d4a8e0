// CancelToken: how a running solver learns that it should stop early.
//
// The owner (the server's job) sets it from any thread; the solver polls
// Check() once per iteration and, when it says stop, returns its best answer
// so far together with the reason. A token may also carry a deadline, so
// that deadline expiry and cancellation reach the solver the same way.
// Thread-safe. Not copyable.
#ifndef SOLVERD_KERNELS_COMMON_CANCEL_TOKEN_H_
#define SOLVERD_KERNELS_COMMON_CANCEL_TOKEN_H_

#include <atomic>
#include <chrono>
#include <cstdint>

#include "common/status.h"

namespace solverd {

class CancelToken {
 public:
  using Clock = std::chrono::steady_clock;

  CancelToken() = default;
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  void Cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

  // The solver must stop at `deadline`; Check() reports kDeadlineExceeded after.
  void SetDeadline(Clock::time_point deadline);

  // OK while the solver may go on; kCancelled or kDeadlineExceeded otherwise.
  Status Check() const;

 private:
  std::atomic<bool> cancelled_{false};
  std::atomic<int64_t> deadline_ns_{INT64_MAX};  // Clock epoch nanoseconds
};

// Convenience for solvers that accept a null token.
inline Status CheckCancel(const CancelToken* token) {
  return token == nullptr ? Status::Ok() : token->Check();
}

}  // namespace solverd

#endif  // SOLVERD_KERNELS_COMMON_CANCEL_TOKEN_H_
