// SolverServiceImpl: the gRPC face of JobManager. It translates requests
// and statuses, and, when the server has bearer tokens, authenticates each
// call and keeps every token to its own jobs; every other decision is the
// manager's. Thread-safe.
#ifndef SOLVERD_SERVER_GRPC_SERVICE_H_
#define SOLVERD_SERVER_GRPC_SERVICE_H_

#include <cstdint>

#include <string>

#include "absl/status/statusor.h"
#include "server/bearer_tokens.h"
#include "server/families/sor/tuner_registry.h"
#include "server/job_manager.h"
#include "solverd/v1/jobs.grpc.pb.h"

namespace solverd::server {

class SolverServiceImpl final : public v1::SolverService::Service {
 public:
  // Largest blob chunk sent by DownloadBlob (well under the 4 MiB limit).
  static constexpr int64_t kDownloadChunkBytes = 1 << 20;

  // `tokens` (may be null: no auth) must outlive the service.
  SolverServiceImpl(JobManager* manager, const BearerTokens* tokens)
      : manager_(manager), tokens_(tokens) {}

  grpc::Status SubmitJob(grpc::ServerContext*, const v1::SubmitJobRequest* req,
                         v1::Job* out) override;
  grpc::Status WatchJob(grpc::ServerContext* ctx, const v1::WatchJobRequest* req,
                        grpc::ServerWriter<v1::JobEvent>* writer) override;
  grpc::Status GetJob(grpc::ServerContext*, const v1::GetJobRequest* req,
                      v1::Job* out) override;
  grpc::Status ListJobs(grpc::ServerContext*, const v1::ListJobsRequest* req,
                        v1::ListJobsResponse* out) override;
  grpc::Status CancelJob(grpc::ServerContext*, const v1::CancelJobRequest* req,
                         v1::Job* out) override;
  grpc::Status UploadBlob(grpc::ServerContext*, grpc::ServerReader<v1::BlobChunk>* reader,
                          v1::BlobInfo* out) override;
  grpc::Status DownloadBlob(grpc::ServerContext* ctx, const v1::DownloadBlobRequest* req,
                            grpc::ServerWriter<v1::BlobChunk>* writer) override;
  grpc::Status ListBlobs(grpc::ServerContext* ctx, const v1::ListBlobsRequest* req,
                         v1::ListBlobsResponse* out) override;
  grpc::Status DeleteBlob(grpc::ServerContext* ctx, const v1::DeleteBlobRequest* req,
                          v1::DeleteBlobResponse* out) override;
  grpc::Status CreateTuner(grpc::ServerContext*, const v1::CreateTunerRequest* req,
                           v1::Tuner* out) override;
  grpc::Status GetTuner(grpc::ServerContext*, const v1::GetTunerRequest* req,
                        v1::Tuner* out) override;
  grpc::Status ListTuners(grpc::ServerContext*, const v1::ListTunersRequest* req,
                          v1::ListTunersResponse* out) override;
  grpc::Status DeleteTuner(grpc::ServerContext*, const v1::DeleteTunerRequest* req,
                           v1::DeleteTunerResponse* out) override;
  grpc::Status TuneSor(grpc::ServerContext* ctx, const v1::TuneSorRequest* req,
                       grpc::ServerWriter<v1::JobEvent>* writer) override;
  grpc::Status SolveDmmv(grpc::ServerContext* ctx, const v1::SolveDmmvRequest* req,
                         grpc::ServerWriter<v1::JobEvent>* writer) override;
  grpc::Status Quantize(grpc::ServerContext* ctx, const v1::QuantizeRequest* req,
                        grpc::ServerWriter<v1::JobEvent>* writer) override;
  grpc::Status SolveOt(grpc::ServerContext* ctx, const v1::SolveOtRequest* req,
                       grpc::ServerWriter<v1::JobEvent>* writer) override;

 private:
  // Every convenience RPC: submits the problem in field 1 of `req` (a
  // JobSpec problem's type) with its priority (2) and deadline (3), then
  // streams the job's events.
  grpc::Status SubmitAndStream(grpc::ServerContext* ctx, const google::protobuf::Message& req,
                               grpc::ServerWriter<v1::JobEvent>* writer);
  // The sor family's tuners; UNIMPLEMENTED where this server has no sor.
  absl::StatusOr<TunerRegistry*> Tuners() const;
  grpc::Status Stream(grpc::ServerContext* ctx, const std::string& job_id, int64_t from_event,
                      grpc::ServerWriter<v1::JobEvent>* writer);

  // The calling token's name; "" when the server has no tokens.
  absl::StatusOr<std::string> Caller(const grpc::ServerContext& ctx) const;
  // The job if `caller` may see it: NOT_FOUND, or PERMISSION_DENIED for
  // another token's job.
  absl::StatusOr<v1::Job> JobFor(const std::string& caller, const std::string& job_id) const;
  // OK when `caller` may watch the job (JobFor's check, without the view).
  absl::Status CheckOwner(const std::string& caller, const std::string& job_id) const;

  JobManager* const manager_;
  const BearerTokens* const tokens_;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_GRPC_SERVICE_H_
