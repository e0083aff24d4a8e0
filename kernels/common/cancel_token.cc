#include "common/cancel_token.h"

namespace solverd {

void CancelToken::SetDeadline(Clock::time_point deadline) {
  deadline_ns_.store(std::chrono::duration_cast<std::chrono::nanoseconds>(
                         deadline.time_since_epoch()).count(),
                     std::memory_order_relaxed);
}

Status CancelToken::Check() const {
  if (cancelled()) return {StatusCode::kCancelled, "cancelled"};
  int64_t deadline = deadline_ns_.load(std::memory_order_relaxed);
  if (deadline != INT64_MAX) {
    int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      Clock::now().time_since_epoch()).count();
    if (now >= deadline) return {StatusCode::kDeadlineExceeded, "deadline exceeded"};
  }
  return Status::Ok();
}

}  // namespace solverd
