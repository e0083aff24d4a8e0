#include "client/solver_client.h"

#include <algorithm>
#include <thread>
#include <vector>

#include <grpcpp/security/credentials.h>
#include <grpcpp/support/client_interceptor.h>

namespace solverd::client {
absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

namespace {

template <typename Response, typename Call>
absl::StatusOr<Response> Unary(Call call) {
  grpc::ClientContext ctx;
  Response response;
  grpc::Status s = call(&ctx, &response);
  if (!s.ok()) return FromGrpc(s);
  return response;
}

// Adds `authorization: Bearer <token>` to every call of a channel (as
// metadata, so it works on plaintext loopback channels too, where gRPC
// refuses call credentials).
class BearerTokenInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit BearerTokenInterceptor(const std::string& header) : header_(header) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", header_});
    }
    methods->Proceed();
  }

 private:
  const std::string& header_;
};

class BearerTokenInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerTokenInterceptorFactory(std::string token) : header_("Bearer " + token) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new BearerTokenInterceptor(header_);
  }

 private:
  const std::string header_;
};

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const ClientSecurity& security) {
  if (security.tls_ca.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = security.tls_ca;
  ssl.pem_cert_chain = security.tls_cert;
  ssl.pem_private_key = security.tls_key;
  return grpc::SslCredentials(ssl);
}

// Targets that name several servers (dns:///a-headless-service:50051,
// ipv4:10.0.0.1:50051,10.0.0.2:50051) spread calls over all of them; any
// replica on a shared store serves any job, and a call whose replica went
// away is retried on the others.
bool NamesSeveralServers(const std::string& target) {
  for (const char* scheme : {"dns:", "ipv4:", "ipv6:"}) {
    if (target.rfind(scheme, 0) == 0) return true;
  }
  return false;
}

bool IsTerminal(v1::JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED ||
         s == v1::JOB_STATE_CANCELLED;
}

}  // namespace

SolverClient::SolverClient(const std::string& server, const ClientSecurity& security) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  if (NamesSeveralServers(server)) args.SetLoadBalancingPolicyName("round_robin");
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  if (!security.token.empty()) {
    interceptors.push_back(std::make_unique<BearerTokenInterceptorFactory>(security.token));
  }
  channel_ = grpc::experimental::CreateCustomChannelWithInterceptors(
      server, ChannelCredentials(security), args, std::move(interceptors));
  stub_ = v1::SolverService::NewStub(channel_);
  health_ = grpc::health::v1::Health::NewStub(channel_);
}

absl::StatusOr<v1::Job> SolverClient::Submit(const v1::JobSpec& spec) {
  v1::SubmitJobRequest req;
  *req.mutable_spec() = spec;
  return Unary<v1::Job>([&](auto* ctx, auto* out) { return stub_->SubmitJob(ctx, req, out); });
}

absl::StatusOr<v1::Job> SolverClient::Get(const std::string& job_id) {
  v1::GetJobRequest req;
  req.set_job_id(job_id);
  return Unary<v1::Job>([&](auto* ctx, auto* out) { return stub_->GetJob(ctx, req, out); });
}

absl::StatusOr<v1::ListJobsResponse> SolverClient::List(const v1::ListJobsRequest& req) {
  return Unary<v1::ListJobsResponse>(
      [&](auto* ctx, auto* out) { return stub_->ListJobs(ctx, req, out); });
}

absl::StatusOr<v1::Job> SolverClient::Cancel(const std::string& job_id) {
  v1::CancelJobRequest req;
  req.set_job_id(job_id);
  return Unary<v1::Job>([&](auto* ctx, auto* out) { return stub_->CancelJob(ctx, req, out); });
}

absl::StatusOr<v1::BlobInfo> SolverClient::Upload(const std::string& bytes,
                                                  const std::string& sha256) {
  grpc::ClientContext ctx;
  v1::BlobInfo info;
  auto writer = stub_->UploadBlob(&ctx, &info);
  int64_t offset = 0;
  do {
    v1::BlobChunk chunk;
    chunk.set_offset(offset);
    const int64_t n = std::min<int64_t>(kUploadChunkBytes, bytes.size() - offset);
    chunk.set_data(bytes.substr(offset, n));
    if (offset + n >= static_cast<int64_t>(bytes.size())) chunk.set_sha256(sha256);
    if (!writer->Write(chunk)) break;  // the server ended the call; Finish says why
    offset += n;
  } while (offset < static_cast<int64_t>(bytes.size()));
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) return FromGrpc(s);
  return info;
}

absl::StatusOr<std::string> SolverClient::Download(const std::string& blob_id) {
  grpc::ClientContext ctx;
  v1::DownloadBlobRequest req;
  req.set_blob_id(blob_id);
  auto reader = stub_->DownloadBlob(&ctx, req);
  std::string out;
  v1::BlobChunk chunk;
  while (reader->Read(&chunk)) out += chunk.data();
  grpc::Status s = reader->Finish();
  if (!s.ok()) return FromGrpc(s);
  return out;
}

absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> SolverClient::Health(
    const std::string& service, absl::Duration timeout) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status s = health_->Check(&ctx, req, &response);
  if (!s.ok()) return FromGrpc(s);
  return response.status();
}

absl::StatusOr<v1::JobState> SolverClient::Watch(
    const std::string& job_id, int64_t from_event,
    const std::function<void(const v1::JobEvent&)>& on_event, int max_reconnects) {
  int64_t next = from_event;
  for (int attempt = 0;; ++attempt) {
    const int64_t resumed_at = next;
    grpc::ClientContext ctx;
    v1::WatchJobRequest req;
    req.set_job_id(job_id);
    req.set_from_event(next);
    auto reader = stub_->WatchJob(&ctx, req);
    v1::JobEvent event;
    v1::JobState last_state = v1::JOB_STATE_UNSPECIFIED;
    while (reader->Read(&event)) {
      on_event(event);
      next = event.number() + 1;
      if (event.has_state()) last_state = event.state().state();
    }
    grpc::Status s = reader->Finish();
    if (s.ok() && IsTerminal(last_state)) return last_state;
    if (s.ok()) {  // e.g. from_event was past the end of a finished job
      auto job = Get(job_id);
      if (!job.ok()) return job.status();
      if (IsTerminal(job->state())) return job->state();
      return absl::UnavailableError("watch ended before the job finished");
    }
    if (next > resumed_at) attempt = 0;  // the stream made progress: failures in a row
    // This call never cancels its own context, so CANCELLED comes from the
    // far end: a replica whose gRPC server shut down under the stream.
    // Another replica (or this one, restarted) can carry on, as on
    // UNAVAILABLE.
    const bool retry = s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                       s.error_code() == grpc::StatusCode::CANCELLED;
    if (!retry || attempt >= max_reconnects) {
      return FromGrpc(s);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200 << std::min(attempt, 4)));
  }
}

}  // namespace solverd::client
