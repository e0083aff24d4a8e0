// solverctl tuner create|get|list|delete: the sor tuners, printed as JSON.
#include "client/commands.h"

#include <cstdio>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "google/protobuf/util/json_util.h"

ABSL_DECLARE_FLAG(std::string, algorithm);
ABSL_DECLARE_FLAG(uint64_t, seed);
ABSL_DECLARE_FLAG(double, context_min);
ABSL_DECLARE_FLAG(double, context_max);

namespace solverd::client {
namespace {

absl::Status Print(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  auto s = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!s.ok()) return absl::InternalError(s.ToString());
  std::printf("%s", json.c_str());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::CreateTunerRequest> TunerRequestFromFlags(const std::string& name) {
  auto algorithm = EnumFromFlag<v1::TunerAlgorithm>(
      "algorithm", "TUNER_ALGORITHM_", absl::GetFlag(FLAGS_algorithm),
      "tsallis-inf, tsallis-inf-cb, chebcb, grid-oracle, fixed", v1::TunerAlgorithm_Parse);
  if (!algorithm.ok()) return algorithm.status();
  v1::CreateTunerRequest request;
  request.set_name(name);
  request.set_algorithm(*algorithm);
  request.set_seed(absl::GetFlag(FLAGS_seed));
  request.set_context_min(absl::GetFlag(FLAGS_context_min));
  request.set_context_max(absl::GetFlag(FLAGS_context_max));
  return request;
}

absl::Status TunerCommand(SolverClient& client, const std::vector<std::string>& args) {
  const std::string usage = "tuner create|get|delete <name>, or tuner list";
  if (args.empty()) return absl::InvalidArgumentError(usage);
  const std::string& verb = args[0];
  grpc::ClientContext ctx;
  if (verb == "list") {
    v1::ListTunersResponse out;
    grpc::Status s = client.stub().ListTuners(&ctx, v1::ListTunersRequest(), &out);
    return s.ok() ? Print(out) : FromGrpc(s);
  }
  if (args.size() != 2) return absl::InvalidArgumentError(usage);
  v1::Tuner tuner;
  grpc::Status s;
  if (verb == "create") {
    auto req = TunerRequestFromFlags(args[1]);
    if (!req.ok()) return req.status();
    s = client.stub().CreateTuner(&ctx, *req, &tuner);
  } else if (verb == "get") {
    v1::GetTunerRequest req;
    req.set_name(args[1]);
    s = client.stub().GetTuner(&ctx, req, &tuner);
  } else if (verb == "delete") {
    v1::DeleteTunerRequest req;
    req.set_name(args[1]);
    v1::DeleteTunerResponse out;
    s = client.stub().DeleteTuner(&ctx, req, &out);
    return FromGrpc(s);
  } else {
    return absl::InvalidArgumentError(usage);
  }
  return s.ok() ? Print(tuner) : FromGrpc(s);
}

}  // namespace solverd::client
