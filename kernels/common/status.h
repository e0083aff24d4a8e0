// Status: the outcome of a kernels/ call, as a value (never an exception).
//
// kernels/ may not depend on Abseil, so it has this small type of its own;
// server/ maps it to absl::Status in exactly one place. Codes mirror the gRPC
// codes a caller would return for the same failure. Immutable and cheap to
// copy; thread-compatible.
#ifndef SOLVERD_KERNELS_COMMON_STATUS_H_
#define SOLVERD_KERNELS_COMMON_STATUS_H_

#include <string>
#include <utility>

namespace solverd {

enum class StatusCode {
  kOk = 0,
  kCancelled,           // the caller's CancelToken was set
  kInvalidArgument,     // the problem is malformed; the message names the field
  kDeadlineExceeded,    // the CancelToken's deadline passed
  kResourceExhausted,   // out of (device) memory
  kFailedPrecondition,  // e.g. a CUDA device was asked for but none exists
  kUnimplemented,
  kInternal,            // a CUDA or library call failed unexpectedly
};

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
inline Status ResourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

}  // namespace solverd

// Returns from the enclosing function when `expr` yields a non-OK Status.
#define SOLVERD_RETURN_IF_ERROR(expr)            \
  do {                                           \
    ::solverd::Status solverd_status_ = (expr);  \
    if (!solverd_status_.ok()) return solverd_status_; \
  } while (0)

#endif  // SOLVERD_KERNELS_COMMON_STATUS_H_
