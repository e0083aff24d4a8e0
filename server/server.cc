#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.pb.h"  // so reflection can describe Health
#include "server/state_files.h"

namespace solverd::server {
namespace {

constexpr int kMaxMessageBytes = 64 << 20;  // a receive cap; uploads go in chunks

absl::StatusOr<std::string> ReadPem(const std::string& path, absl::string_view flag) {
  absl::StatusOr<std::string> text = ReadWholeFile(path);
  if (!text.ok() || text->find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": cannot read a PEM file at ", path));
  }
  return text;
}

// TLS (mutual with --tls_client_ca) when a certificate is given.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(const ServerOptions& o) {
  if (o.tls_cert.empty()) return grpc::InsecureServerCredentials();
  auto cert = ReadPem(o.tls_cert, "tls_cert");
  if (!cert.ok()) return cert.status();
  auto key = ReadPem(o.tls_key, "tls_key");
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions ssl(
      o.tls_client_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                              : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_key_cert_pairs.push_back({*key, *cert});
  if (!o.tls_client_ca.empty()) {
    auto ca = ReadPem(o.tls_client_ca, "tls_client_ca");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
  }
  return grpc::SslServerCredentials(ssl);
}

// Readiness: the overall service ("") and the API follow the job manager
// (NOT_SERVING while draining or while the shared store is away).
void SetServing(grpc::Server* server, bool serving) {
  auto* health = server->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus("", serving);
  health->SetServingStatus(v1::SolverService::service_full_name(), serving);
}

// Liveness ("liveness"): SERVING for as long as the process answers, so a
// liveness probe does not restart replicas whose solvers are still running
// through a database outage.
void SetAlive(grpc::Server* server) {
  auto* health = server->GetHealthCheckService();
  if (health != nullptr) health->SetServingStatus(std::string(kLivenessService), true);
}

}  // namespace

absl::StatusOr<std::unique_ptr<SolverServer>> SolverServer::Start(const ServerOptions& options) {
  std::unique_ptr<SolverServer> s(new SolverServer());
  s->options_ = options;
  auto credentials = Credentials(options);
  if (!credentials.ok()) return credentials.status();
  if (!options.auth_tokens_file.empty()) {
    auto tokens = BearerTokens::Load(options.auth_tokens_file);
    if (!tokens.ok()) return tokens.status();
    s->tokens_ = std::make_unique<BearerTokens>(*std::move(tokens));
  }
  auto metrics = Metrics::Serve(options.metrics_address, options.metrics_port);
  if (!metrics.ok()) return metrics.status();
  s->metrics_ = *std::move(metrics);
  auto lanes = MakeLanes(options);
  if (!lanes.ok()) return lanes.status();
  s->lanes_ = *lanes;
  auto manager = JobManager::Create(options, *std::move(lanes), s->metrics_.get());
  if (!manager.ok()) return manager.status();
  s->manager_ = *std::move(manager);
  s->service_ = std::make_unique<SolverServiceImpl>(s->manager_.get(), s->tokens_.get());

  // Touch the health descriptor so the linker keeps it for reflection.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.AddListeningPort(options.listen, *credentials, &s->grpc_port_);
  builder.RegisterService(s->service_.get());
  s->grpc_ = builder.BuildAndStart();
  if (s->grpc_ == nullptr || s->grpc_port_ == 0) {
    s->manager_->StopAccepting();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen, " (address in use or invalid)"));
  }
  SetServing(s->grpc_.get(), true);
  SetAlive(s->grpc_.get());
  SolverServer* raw = s.get();
  s->health_ = std::thread([raw] { raw->HealthLoop(); });
  return s;
}

void SolverServer::HealthLoop() {
  bool serving = true;
  while (!stop_health_.WaitForNotificationWithTimeout(absl::Milliseconds(250))) {
    const bool now = manager_->serving();
    if (now != serving) SetServing(grpc_.get(), now);
    serving = now;
  }
}

SolverServer::~SolverServer() { Shutdown(); }

void SolverServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (health_.joinable()) {
    stop_health_.Notify();
    health_.join();
  }
  if (grpc_ != nullptr) SetServing(grpc_.get(), false);
  if (manager_ != nullptr) {
    manager_->StopAccepting();
    manager_->Shutdown(options_.grace_period);
  }
  // Every job is terminal now, so watchers drain and return promptly.
  if (grpc_ != nullptr) grpc_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
}

}  // namespace solverd::server
