// SolverServer: solverd assembled: lanes, job manager, gRPC service with
// health and reflection, and the metrics endpoint. Start() returns once it
// is serving; Shutdown() performs the graceful stop of DESIGN.md.
// Thread-safe: Shutdown() may be called from any thread, once.
#ifndef SOLVERD_SERVER_SERVER_H_
#define SOLVERD_SERVER_SERVER_H_

#include <memory>
#include <string_view>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "server/bearer_tokens.h"
#include "server/grpc_service.h"
#include "server/job_manager.h"
#include "server/metrics.h"
#include "server/options.h"

namespace solverd::server {

// The gRPC health service name that stays SERVING while the process runs
// (for liveness probes); "" is readiness.
inline constexpr std::string_view kLivenessService = "liveness";

class SolverServer {
 public:
  // UNAVAILABLE when a port is taken (ports are never shared: SO_REUSEPORT
  // is off), other codes for bad options.
  static absl::StatusOr<std::unique_ptr<SolverServer>> Start(const ServerOptions& options);
  ~SolverServer();

  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_->port(); }
  const std::vector<Lane>& lanes() const { return lanes_; }

  // Health turns NOT_SERVING, submits get UNAVAILABLE, queued jobs are
  // cancelled, running ones get the grace period, then gRPC stops.
  void Shutdown();

 private:
  SolverServer() = default;
  // Keeps gRPC health in step with the job manager (NOT_SERVING while a
  // shared store does not answer), four times a second.
  void HealthLoop();

  ServerOptions options_;
  std::vector<Lane> lanes_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<JobManager> manager_;
  std::unique_ptr<BearerTokens> tokens_;  // null: no auth
  std::unique_ptr<SolverServiceImpl> service_;
  std::unique_ptr<grpc::Server> grpc_;
  int grpc_port_ = 0;
  bool shut_down_ = false;
  absl::Notification stop_health_;
  std::thread health_;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_SERVER_H_
