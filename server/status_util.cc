#include "server/status_util.h"

#include "absl/strings/ascii.h"

namespace solverd::server {

absl::Status FromKernel(const ::solverd::Status& s) {
  using K = ::solverd::StatusCode;
  switch (s.code()) {
    case K::kOk: return absl::OkStatus();
    case K::kCancelled: return absl::CancelledError(s.message());
    case K::kInvalidArgument: return absl::InvalidArgumentError(s.message());
    case K::kDeadlineExceeded: return absl::DeadlineExceededError(s.message());
    case K::kResourceExhausted: return absl::ResourceExhaustedError(s.message());
    case K::kFailedPrecondition: return absl::FailedPreconditionError(s.message());
    case K::kUnimplemented: return absl::UnimplementedError(s.message());
    case K::kInternal: return absl::InternalError(s.message());
  }
  return absl::UnknownError(s.message());
}

// absl and gRPC share the canonical code numbers.
grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

std::string StatusLabel(absl::StatusCode code) {
  if (code == absl::StatusCode::kOk) return "succeeded";
  return absl::AsciiStrToLower(absl::StatusCodeToString(code));
}

}  // namespace solverd::server
