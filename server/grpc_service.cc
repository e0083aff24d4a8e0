#include "server/grpc_service.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "server/blob_upload.h"
#include "server/families/sor/family.h"
#include "server/status_util.h"

namespace solverd::server {

namespace {

// What the API says of a stored blob.
v1::BlobInfo BlobInfoOf(const BlobStore::Blob& blob) {
  v1::BlobInfo info;
  info.set_blob_id(blob.id);
  info.set_size_bytes(blob.size);
  info.set_sha256(blob.sha256);
  *info.mutable_expire_time() = google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
      absl::ToUnixNanos(blob.expire_time));
  return info;
}

// The JobSpec a convenience request asks for: field 1 is the problem (of
// the type of one of JobSpec's problem fields), 2 the priority, 3 the
// deadline, as every *Request of a convenience RPC declares them.
absl::StatusOr<v1::JobSpec> ConvenienceSpec(const google::protobuf::Message& req) {
  const google::protobuf::Descriptor* type = req.GetDescriptor();
  const google::protobuf::FieldDescriptor* problem = type->FindFieldByNumber(1);
  const google::protobuf::FieldDescriptor* priority = type->FindFieldByNumber(2);
  const google::protobuf::FieldDescriptor* deadline = type->FindFieldByNumber(3);
  const google::protobuf::OneofDescriptor* problems =
      v1::JobSpec::descriptor()->FindOneofByName("problem");
  v1::JobSpec spec;
  const google::protobuf::Reflection* in = req.GetReflection();
  for (int i = 0; problem != nullptr && i < problems->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = problems->field(i);
    if (field->message_type() != problem->message_type()) continue;
    spec.GetReflection()->MutableMessage(&spec, field)->CopyFrom(in->GetMessage(req, problem));
    if (priority != nullptr) spec.set_priority(in->GetInt32(req, priority));
    if (deadline != nullptr && in->HasField(req, deadline)) {
      spec.mutable_deadline()->CopyFrom(in->GetMessage(req, deadline));
    }
    return spec;
  }
  return absl::InternalError(absl::StrCat(type->full_name(), " holds no JobSpec problem"));
}

absl::Status AnotherTokens(const std::string& job_id) {
  return absl::PermissionDeniedError(absl::StrCat("job ", job_id, " belongs to another token"));
}

}  // namespace

template <typename T>
static grpc::Status Reply(absl::StatusOr<T> result, T* out) {
  if (!result.ok()) return ToGrpc(result.status());
  *out = *std::move(result);
  return grpc::Status::OK;
}

absl::StatusOr<std::string> SolverServiceImpl::Caller(const grpc::ServerContext& ctx) const {
  if (tokens_ == nullptr) return std::string();
  const auto& metadata = ctx.client_metadata();
  auto it = metadata.find("authorization");
  return tokens_->NameFor(it == metadata.end() ? absl::string_view()
                                               : absl::string_view(it->second.data(),
                                                                   it->second.size()));
}

absl::StatusOr<v1::Job> SolverServiceImpl::JobFor(const std::string& caller,
                                                  const std::string& job_id) const {
  absl::StatusOr<v1::Job> job = manager_->Get(job_id);
  if (job.ok() && job->owner() != caller) return AnotherTokens(job_id);
  return job;
}

absl::Status SolverServiceImpl::CheckOwner(const std::string& caller,
                                           const std::string& job_id) const {
  absl::StatusOr<std::string> owner = manager_->Owner(job_id);
  if (!owner.ok()) return owner.status();
  return *owner == caller ? absl::OkStatus() : AnotherTokens(job_id);
}

grpc::Status SolverServiceImpl::SubmitJob(grpc::ServerContext* ctx,
                                          const v1::SubmitJobRequest* req, v1::Job* out) {
  auto caller = Caller(*ctx);
  if (!caller.ok()) return ToGrpc(caller.status());
  return Reply(manager_->Submit(req->spec(), *caller), out);
}

grpc::Status SolverServiceImpl::GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* req,
                                       v1::Job* out) {
  auto caller = Caller(*ctx);
  if (!caller.ok()) return ToGrpc(caller.status());
  return Reply(JobFor(*caller, req->job_id()), out);
}

grpc::Status SolverServiceImpl::ListJobs(grpc::ServerContext* ctx,
                                         const v1::ListJobsRequest* req,
                                         v1::ListJobsResponse* out) {
  auto caller = Caller(*ctx);
  if (!caller.ok()) return ToGrpc(caller.status());
  return Reply(manager_->List(*req, tokens_ != nullptr ? &*caller : nullptr), out);
}

grpc::Status SolverServiceImpl::CancelJob(grpc::ServerContext* ctx,
                                          const v1::CancelJobRequest* req, v1::Job* out) {
  auto caller = Caller(*ctx);
  if (!caller.ok()) return ToGrpc(caller.status());
  auto job = JobFor(*caller, req->job_id());
  if (!job.ok()) return ToGrpc(job.status());
  return Reply(manager_->Cancel(req->job_id()), out);
}

grpc::Status SolverServiceImpl::Stream(grpc::ServerContext* ctx, const std::string& job_id,
                                       int64_t from_event,
                                       grpc::ServerWriter<v1::JobEvent>* writer) {
  absl::Status s = manager_->Watch(
      job_id, from_event, [&](const v1::JobEvent& e) { return writer->Write(e); },
      [&] { return ctx->IsCancelled(); });
  return ToGrpc(s);
}

grpc::Status SolverServiceImpl::WatchJob(grpc::ServerContext* ctx, const v1::WatchJobRequest* req,
                                         grpc::ServerWriter<v1::JobEvent>* writer) {
  auto caller = Caller(*ctx);
  if (!caller.ok()) return ToGrpc(caller.status());
  if (absl::Status s = CheckOwner(*caller, req->job_id()); !s.ok()) return ToGrpc(s);
  return Stream(ctx, req->job_id(), req->from_event(), writer);
}

grpc::Status SolverServiceImpl::SubmitAndStream(grpc::ServerContext* ctx,
                                                const google::protobuf::Message& req,
                                                grpc::ServerWriter<v1::JobEvent>* writer) {
  auto caller = Caller(*ctx);
  if (!caller.ok()) return ToGrpc(caller.status());
  auto spec = ConvenienceSpec(req);
  if (!spec.ok()) return ToGrpc(spec.status());
  auto job = manager_->Submit(*spec, *caller);
  if (!job.ok()) return ToGrpc(job.status());
  return Stream(ctx, job->id(), 0, writer);
}

grpc::Status SolverServiceImpl::SolveOt(grpc::ServerContext* ctx, const v1::SolveOtRequest* req,
                                        grpc::ServerWriter<v1::JobEvent>* writer) {
  return SubmitAndStream(ctx, *req, writer);
}

grpc::Status SolverServiceImpl::TuneSor(grpc::ServerContext* ctx, const v1::TuneSorRequest* req,
                                        grpc::ServerWriter<v1::JobEvent>* writer) {
  return SubmitAndStream(ctx, *req, writer);
}

grpc::Status SolverServiceImpl::SolveDmmv(grpc::ServerContext* ctx,
                                          const v1::SolveDmmvRequest* req,
                                          grpc::ServerWriter<v1::JobEvent>* writer) {
  return SubmitAndStream(ctx, *req, writer);
}

grpc::Status SolverServiceImpl::Quantize(grpc::ServerContext* ctx,
                                         const v1::QuantizeRequest* req,
                                         grpc::ServerWriter<v1::JobEvent>* writer) {
  return SubmitAndStream(ctx, *req, writer);
}

absl::StatusOr<TunerRegistry*> SolverServiceImpl::Tuners() const {
  const SorFamily* sor = manager_->families().Find<const SorFamily>();
  if (sor == nullptr) return absl::UnimplementedError("tuners: this server has no sor family");
  return &sor->tuners();
}

grpc::Status SolverServiceImpl::CreateTuner(grpc::ServerContext* ctx,
                                            const v1::CreateTunerRequest* req, v1::Tuner* out) {
  if (auto caller = Caller(*ctx); !caller.ok()) return ToGrpc(caller.status());
  auto tuners = Tuners();
  if (!tuners.ok()) return ToGrpc(tuners.status());
  return Reply((*tuners)->Create(*req), out);
}

grpc::Status SolverServiceImpl::GetTuner(grpc::ServerContext* ctx, const v1::GetTunerRequest* req,
                                         v1::Tuner* out) {
  if (auto caller = Caller(*ctx); !caller.ok()) return ToGrpc(caller.status());
  auto tuners = Tuners();
  if (!tuners.ok()) return ToGrpc(tuners.status());
  return Reply((*tuners)->Get(req->name()), out);
}

grpc::Status SolverServiceImpl::ListTuners(grpc::ServerContext* ctx, const v1::ListTunersRequest*,
                                           v1::ListTunersResponse* out) {
  if (auto caller = Caller(*ctx); !caller.ok()) return ToGrpc(caller.status());
  auto tuners = Tuners();
  if (!tuners.ok()) return ToGrpc(tuners.status());
  auto listed = (*tuners)->List();
  if (!listed.ok()) return ToGrpc(listed.status());
  *out = *std::move(listed);
  return grpc::Status::OK;
}

grpc::Status SolverServiceImpl::DeleteTuner(grpc::ServerContext* ctx,
                                            const v1::DeleteTunerRequest* req,
                                            v1::DeleteTunerResponse*) {
  if (auto caller = Caller(*ctx); !caller.ok()) return ToGrpc(caller.status());
  auto tuners = Tuners();
  if (!tuners.ok()) return ToGrpc(tuners.status());
  return ToGrpc((*tuners)->Delete(req->name()));
}

grpc::Status SolverServiceImpl::UploadBlob(grpc::ServerContext* ctx,
                                           grpc::ServerReader<v1::BlobChunk>* reader,
                                           v1::BlobInfo* out) {
  auto caller = Caller(*ctx);
  if (!caller.ok()) return ToGrpc(caller.status());
  BlobUpload upload(manager_->blobs(), *caller);
  v1::BlobChunk chunk;
  while (reader->Read(&chunk)) {
    absl::Status appended = upload.Append(chunk.offset(), chunk.data());
    if (appended.ok() && !chunk.sha256().empty()) appended = upload.Expect(chunk.sha256());
    if (!appended.ok()) return ToGrpc(appended);
  }
  // The stream also ends when the client goes away mid-upload: what came
  // is a prefix, which must not be stored as if it were the whole.
  if (ctx->IsCancelled()) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "the upload was interrupted; nothing stored");
  }
  auto blob = upload.Finish(absl::Now());
  if (!blob.ok()) return ToGrpc(blob.status());
  *out = BlobInfoOf(*blob);
  return grpc::Status::OK;
}

grpc::Status SolverServiceImpl::ListBlobs(grpc::ServerContext* ctx, const v1::ListBlobsRequest*,
                                          v1::ListBlobsResponse* out) {
  auto caller = Caller(*ctx);
  if (!caller.ok()) return ToGrpc(caller.status());
  auto blobs = manager_->blobs().List(*caller, absl::Now());
  if (!blobs.ok()) return ToGrpc(blobs.status());
  for (const BlobStore::Blob& blob : *blobs) *out->add_blobs() = BlobInfoOf(blob);
  return grpc::Status::OK;
}

grpc::Status SolverServiceImpl::DeleteBlob(grpc::ServerContext* ctx,
                                           const v1::DeleteBlobRequest* req,
                                           v1::DeleteBlobResponse*) {
  auto caller = Caller(*ctx);
  if (!caller.ok()) return ToGrpc(caller.status());
  return ToGrpc(manager_->blobs().Delete(req->blob_id(), *caller));
}

grpc::Status SolverServiceImpl::DownloadBlob(grpc::ServerContext* ctx,
                                             const v1::DownloadBlobRequest* req,
                                             grpc::ServerWriter<v1::BlobChunk>* writer) {
  if (auto caller = Caller(*ctx); !caller.ok()) return ToGrpc(caller.status());
  bool client_gone = false;
  absl::Status read = manager_->blobs().Read(
      req->blob_id(), kDownloadChunkBytes,
      [&](const BlobStore::Blob& blob, int64_t offset, absl::string_view piece) {
        if (ctx->IsCancelled()) return absl::CancelledError("the client went away");
        v1::BlobChunk chunk;
        chunk.set_offset(offset);
        if (offset == 0) chunk.set_sha256(blob.sha256);
        chunk.set_data(piece.data(), piece.size());
        if (!writer->Write(chunk)) {
          client_gone = true;
          return absl::CancelledError("the client went away");
        }
        return absl::OkStatus();
      });
  if (client_gone) return grpc::Status::OK;
  if (!read.ok()) return ToGrpc(read);
  return grpc::Status::OK;
}

}  // namespace solverd::server
