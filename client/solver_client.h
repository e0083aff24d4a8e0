// SolverClient: a small C++ client for solverd, used by solverctl, the
// loopback tests and the load benchmark. Calls return absl::Status /
// StatusOr carrying the server's gRPC code and message. Thread-safe (gRPC
// stubs are); one client may serve many threads.
#ifndef SOLVERD_CLIENT_SOLVER_CLIENT_H_
#define SOLVERD_CLIENT_SOLVER_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "solverd/v1/jobs.grpc.pb.h"

namespace solverd::client {

// How to reach a server that uses TLS and/or bearer tokens. PEM contents,
// not paths. No tls_ca: plaintext.
struct ClientSecurity {
  std::string tls_ca;              // CA that signed the server's certificate
  std::string tls_cert, tls_key;   // client certificate, for mutual TLS
  std::string token;               // sent as `authorization: Bearer <token>`
};

// A gRPC status as an absl::Status with the same code and message.
absl::Status FromGrpc(const grpc::Status& s);

class SolverClient {
 public:
  // Chunk size for UploadBlob (under the 4 MiB message limit).
  static constexpr int64_t kUploadChunkBytes = 1 << 20;

  explicit SolverClient(const std::string& server, const ClientSecurity& security = {});

  absl::StatusOr<v1::Job> Submit(const v1::JobSpec& spec);
  absl::StatusOr<v1::Job> Get(const std::string& job_id);
  absl::StatusOr<v1::ListJobsResponse> List(const v1::ListJobsRequest& request);
  absl::StatusOr<v1::Job> Cancel(const std::string& job_id);
  // `sha256`: the bytes' 32-byte digest, if the caller has it; the server
  // then stores them only if they arrived intact (DATA_LOSS otherwise).
  absl::StatusOr<v1::BlobInfo> Upload(const std::string& bytes, const std::string& sha256 = "");
  absl::StatusOr<std::string> Download(const std::string& blob_id);
  // Health of `service` ("" = the whole server): SERVING, NOT_SERVING, ...
  absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> Health(
      const std::string& service, absl::Duration timeout);

  // Streams events from `from_event` until the job's terminal event,
  // calling `on_event` for each. If the stream breaks (UNAVAILABLE: the
  // replica died or shut down), it reconnects from the next event number,
  // on another replica when the target names several, up to
  // `max_reconnects` times in a row, so no event is lost or repeated.
  // Returns the terminal state.
  absl::StatusOr<v1::JobState> Watch(const std::string& job_id, int64_t from_event,
                                     const std::function<void(const v1::JobEvent&)>& on_event,
                                     int max_reconnects = 5);

  v1::SolverService::Stub& stub() { return *stub_; }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::SolverService::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

}  // namespace solverd::client

#endif  // SOLVERD_CLIENT_SOLVER_CLIENT_H_
