// Conversions between the three status types solverd meets: kernels'
// solverd::Status, absl::Status (server/ and client/), and grpc::Status (the
// wire). Each conversion is written once, here.
// Pure functions, safe from any thread.
#ifndef SOLVERD_SERVER_STATUS_UTIL_H_
#define SOLVERD_SERVER_STATUS_UTIL_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "common/status.h"

namespace solverd::server {

absl::Status FromKernel(const ::solverd::Status& status);
grpc::Status ToGrpc(const absl::Status& status);
absl::Status FromGrpc(const grpc::Status& status);

// Lower-case label for metrics: "succeeded", "invalid_argument", ...
std::string StatusLabel(absl::StatusCode code);

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_STATUS_UTIL_H_
