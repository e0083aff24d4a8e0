// solverctl blob upload|download, and the {"file": PATH} references a
// JobSpec JSON file may hold wherever it names a blob.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "client/blob_transfer.h"
#include "client/commands.h"
#include "client/event_printer.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"

ABSL_DECLARE_FLAG(bool, json);

namespace solverd::client {
namespace {

// Progress of a transfer on stderr, so that stdout keeps only the answer.
TransferProgress ProgressFor(const std::string& label, int64_t total) {
  return TransferProgress(label, total, stderr, isatty(fileno(stderr)) != 0);
}

// Replaces each {"file": PATH} object under `value` by the id of PATH
// uploaded (relative paths from `base`), counting them in *replaced.
absl::Status ReplaceFiles(SolverClient& client, const std::filesystem::path& base,
                          google::protobuf::Value* value, int* replaced) {
  if (value->has_list_value()) {
    for (auto& item : *value->mutable_list_value()->mutable_values()) {
      if (absl::Status s = ReplaceFiles(client, base, &item, replaced); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  if (!value->has_struct_value()) return absl::OkStatus();
  auto& fields = *value->mutable_struct_value()->mutable_fields();
  if (fields.size() == 1 && fields.contains("file") && fields.at("file").has_string_value()) {
    const std::filesystem::path path = base / fields.at("file").string_value();
    auto info = UploadWithProgress(client, path.string());
    if (!info.ok()) return info.status();
    value->set_string_value(info->blob_id());
    ++*replaced;
    return absl::OkStatus();
  }
  for (auto& [name, field] : fields) {
    if (absl::Status s = ReplaceFiles(client, base, &field, replaced); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::BlobInfo> UploadWithProgress(SolverClient& client, const std::string& path) {
  std::error_code error;
  const auto size = std::filesystem::file_size(path, error);
  if (error) return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", error.message()));
  TransferProgress progress = ProgressFor("upload " + path, static_cast<int64_t>(size));
  return UploadFile(client, path, &progress);
}

absl::StatusOr<int64_t> DownloadWithProgress(SolverClient& client, const std::string& blob_id,
                                             const std::string& path) {
  TransferProgress progress = ProgressFor("download " + path, 0);
  return DownloadFile(client, blob_id, path, &progress);
}

absl::StatusOr<std::string> UploadFileReferences(SolverClient& client, const std::string& json,
                                                 const std::string& json_path) {
  google::protobuf::Value value;
  if (!google::protobuf::util::JsonStringToMessage(json, &value).ok()) {
    return json;  // not JSON at all: the JobSpec parser says why
  }
  const std::filesystem::path base = std::filesystem::path(json_path).parent_path();
  int replaced = 0;
  if (absl::Status s = ReplaceFiles(client, base, &value, &replaced); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(json_path, ": ", s.message()));
  }
  if (replaced == 0) return json;  // as written, numbers and all
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(value, &out).ok()) {
    return absl::InternalError("cannot write the JobSpec back as JSON");
  }
  return out;
}

// blob list: one line per blob (id, bytes, expiry), or JSON with --json.
absl::Status ListBlobs(SolverClient& client) {
  grpc::ClientContext ctx;
  v1::ListBlobsResponse listed;
  grpc::Status s = client.stub().ListBlobs(&ctx, v1::ListBlobsRequest(), &listed);
  if (!s.ok()) return FromGrpc(s);
  for (const v1::BlobInfo& blob : listed.blobs()) {
    if (absl::GetFlag(FLAGS_json)) {
      std::printf("%s\n", ToJson(blob).c_str());
      continue;
    }
    std::printf("%s  %12lld bytes  expires %s\n", blob.blob_id().c_str(),
                static_cast<long long>(blob.size_bytes()),
                google::protobuf::util::TimeUtil::ToString(blob.expire_time()).c_str());
  }
  return absl::OkStatus();
}

absl::Status DeleteBlob(SolverClient& client, const std::string& blob_id) {
  grpc::ClientContext ctx;
  v1::DeleteBlobRequest request;
  request.set_blob_id(blob_id);
  v1::DeleteBlobResponse deleted;
  return FromGrpc(client.stub().DeleteBlob(&ctx, request, &deleted));
}

absl::Status BlobCommand(SolverClient& client, const std::vector<std::string>& args) {
  const std::string usage =
      "usage: solverctl blob upload FILE | blob download BLOB_ID OUT | blob list | "
      "blob delete BLOB_ID";
  if (args.size() == 1 && args[0] == "list") return ListBlobs(client);
  if (args.size() == 2 && args[0] == "delete") return DeleteBlob(client, args[1]);
  if (args.size() == 2 && args[0] == "upload") {
    auto info = UploadWithProgress(client, args[1]);
    if (!info.ok()) return info.status();
    if (absl::GetFlag(FLAGS_json)) {
      std::printf("%s\n", ToJson(*info).c_str());
    } else {
      std::printf("%s\n", info->blob_id().c_str());
    }
    return absl::OkStatus();
  }
  if (args.size() == 3 && args[0] == "download") {
    auto size = DownloadWithProgress(client, args[1], args[2]);
    return size.ok() ? absl::OkStatus() : size.status();
  }
  return absl::InvalidArgumentError(usage);
}

}  // namespace solverd::client
