#include "client/commands.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "client/demo_problems.h"
#include "client/event_printer.h"
#include "client/result_summary.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"

ABSL_DECLARE_FLAG(bool, json);
ABSL_DECLARE_FLAG(int64_t, from_event);
ABSL_DECLARE_FLAG(bool, watch);
ABSL_DECLARE_FLAG(int, priority);
ABSL_DECLARE_FLAG(std::string, state);
ABSL_DECLARE_FLAG(std::string, family);
ABSL_DECLARE_FLAG(int, page_size);
ABSL_DECLARE_FLAG(bool, all);
ABSL_DECLARE_FLAG(int64_t, n);
ABSL_DECLARE_FLAG(int64_t, m);
ABSL_DECLARE_FLAG(int, dim);
ABSL_DECLARE_FLAG(double, eta);
ABSL_DECLARE_FLAG(std::string, method);
ABSL_DECLARE_FLAG(uint64_t, seed);
ABSL_DECLARE_FLAG(std::string, device);
ABSL_DECLARE_FLAG(absl::Duration, deadline);
ABSL_DECLARE_FLAG(absl::Duration, timeout);
ABSL_DECLARE_FLAG(std::string, service);

namespace solverd::client {
namespace {

absl::Status Usage(const std::string& what) { return absl::InvalidArgumentError(what); }

absl::Status NeedArgs(const std::vector<std::string>& args, size_t count, const char* usage) {
  if (args.size() != count) return Usage(absl::StrCat("usage: solverctl ", usage));
  return absl::OkStatus();
}

void PrintJob(const v1::Job& job, bool with_result = false) {
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s\n", ToJson(job).c_str());
    return;
  }
  std::printf("%s\n", JobSummary(job).c_str());
  if (with_result) std::fputs(ResultSummary(job.result()).c_str(), stdout);
}

// Watches to the end; OK only when the job SUCCEEDED.
absl::Status WatchToEnd(SolverClient& client, const std::string& job_id, int64_t from_event) {
  EventPrinter printer(ChooseOutputMode(absl::GetFlag(FLAGS_json), stdout), stdout);
  auto state = client.Watch(job_id, from_event, [&](const v1::JobEvent& e) { printer.Print(e); });
  printer.Finish();
  if (!state.ok()) return state.status();
  if (*state != v1::JOB_STATE_SUCCEEDED) {
    return absl::AbortedError(absl::StrCat("job ", job_id, " ended ", v1::JobState_Name(*state)));
  }
  return absl::OkStatus();
}

absl::Status ApplyCommonSpecFlags(v1::JobSpec* spec) {
  if (absl::GetFlag(FLAGS_priority) != 0) spec->set_priority(absl::GetFlag(FLAGS_priority));
  if (absl::GetFlag(FLAGS_deadline) > absl::ZeroDuration()) {
    *spec->mutable_deadline() = google::protobuf::util::TimeUtil::NanosecondsToDuration(
        absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_deadline)));
  }
  const std::string device = absl::GetFlag(FLAGS_device);
  if (device == "cpu") {
    spec->set_device(v1::DEVICE_CPU);
  } else if (device == "cuda") {
    spec->set_device(v1::DEVICE_CUDA);
  } else if (device != "any") {
    return Usage("--device: must be any, cpu or cuda");
  }
  return absl::OkStatus();
}

absl::Status SubmitAndMaybeWatch(SolverClient& client, v1::JobSpec spec, bool watch) {
  if (watch) {
    auto job = RunToEnd(client, std::move(spec));
    return job.ok() ? absl::OkStatus() : job.status();
  }
  absl::Status s = ApplyCommonSpecFlags(&spec);
  if (!s.ok()) return s;
  auto job = client.Submit(spec);
  if (!job.ok()) return job.status();
  PrintJob(*job);
  return absl::OkStatus();
}

absl::Status Demo(SolverClient& client, const std::vector<std::string>& args) {
  absl::Status s = NeedArgs(args, 1, "demo ot|sor|dmmv|quant");
  if (!s.ok()) return s;
  if (args[0] == "sor" || args[0] == "dmmv" || args[0] == "quant") {
    return TaskCommand(client, "demo", args);
  }
  if (args[0] != "ot") {
    return Usage(absl::StrCat("usage: solverctl demo ot|sor|dmmv|quant (not '", args[0], "')"));
  }
  OtDemoOptions o;
  o.n = absl::GetFlag(FLAGS_n);
  o.m = absl::GetFlag(FLAGS_m);
  o.dim = absl::GetFlag(FLAGS_dim);
  o.eta = absl::GetFlag(FLAGS_eta);
  o.seed = absl::GetFlag(FLAGS_seed);
  if (o.n <= 0 || o.m < 0 || o.dim <= 0) return Usage("demo ot: --n, --dim must be positive");
  v1::JobSpec spec;
  *spec.mutable_ot() = RandomOtProblem(o);
  v1::OtMethod method = v1::OT_METHOD_AUTO;
  const std::string method_name = absl::GetFlag(FLAGS_method);
  if (!method_name.empty() &&
      !v1::OtMethod_Parse("OT_METHOD_" + absl::AsciiStrToUpper(method_name), &method)) {
    return Usage("--method: one of auto, sinkhorn, sns");
  }
  spec.mutable_ot()->set_method(method);
  return SubmitAndMaybeWatch(client, spec, /*watch=*/true);
}

absl::Status List(SolverClient& client) {
  v1::ListJobsRequest req;
  const std::string state = absl::GetFlag(FLAGS_state);
  if (!state.empty()) {
    v1::JobState parsed;
    if (!v1::JobState_Parse("JOB_STATE_" + absl::AsciiStrToUpper(state), &parsed)) {
      return Usage("--state: one of queued, running, succeeded, failed, cancelled");
    }
    req.set_state(parsed);
  }
  req.set_family(absl::GetFlag(FLAGS_family));
  req.set_page_size(absl::GetFlag(FLAGS_page_size));
  do {
    auto page = client.List(req);
    if (!page.ok()) return page.status();
    for (const v1::Job& job : page->jobs()) PrintJob(job);
    req.set_page_token(page->next_page_token());
  } while (absl::GetFlag(FLAGS_all) && !req.page_token().empty());
  return absl::OkStatus();
}

absl::Status Health(SolverClient& client) {
  auto status = client.Health(absl::GetFlag(FLAGS_service), absl::GetFlag(FLAGS_timeout));
  if (!status.ok()) return status.status();
  const std::string name = grpc::health::v1::HealthCheckResponse::ServingStatus_Name(*status);
  std::printf("%s\n", name.c_str());
  if (*status != grpc::health::v1::HealthCheckResponse::SERVING) {
    return absl::UnavailableError(absl::StrCat("server is ", name));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::Job> RunToEnd(SolverClient& client, v1::JobSpec spec) {
  absl::Status s = ApplyCommonSpecFlags(&spec);
  if (!s.ok()) return s;
  auto job = client.Submit(spec);
  if (!job.ok()) return job.status();
  if (!absl::GetFlag(FLAGS_json)) std::printf("submitted %s\n", job->id().c_str());
  s = WatchToEnd(client, job->id(), 0);
  if (!s.ok()) return s;
  return client.Get(job->id());
}

absl::Status ReadJobSpecFile(SolverClient& client, const std::string& path, v1::JobSpec* spec) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  auto json = UploadFileReferences(client, text.str(), path);
  if (!json.ok()) return json.status();
  auto s = google::protobuf::util::JsonStringToMessage(*json, spec);
  if (!s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a JobSpec: ", s.ToString()));
  }
  return absl::OkStatus();
}

absl::Status RunCommand(SolverClient& client, const std::string& command,
                        const std::vector<std::string>& args) {
  if (command == "demo") return Demo(client, args);
  if (command == "health") return Health(client);
  if (command == "list") return List(client);
  if (command == "tuner") return TunerCommand(client, args);
  if (command == "blob") return BlobCommand(client, args);
  if (command == "fir" || command == "sor" || command == "quantize") {
    return TaskCommand(client, command, args);
  }
  if (command == "submit") {
    absl::Status s = NeedArgs(args, 1, "submit <problem.json> [--watch]");
    if (!s.ok()) return s;
    v1::JobSpec spec;
    s = ReadJobSpecFile(client, args[0], &spec);
    if (!s.ok()) return s;
    return SubmitAndMaybeWatch(client, spec, absl::GetFlag(FLAGS_watch));
  }
  if (command == "watch") {
    absl::Status s = NeedArgs(args, 1, "watch <job-id> [--from-event=N] [--json]");
    if (!s.ok()) return s;
    return WatchToEnd(client, args[0], absl::GetFlag(FLAGS_from_event));
  }
  if (command == "get" || command == "cancel") {
    absl::Status s = NeedArgs(args, 1, (command + " <job-id>").c_str());
    if (!s.ok()) return s;
    auto job = command == "get" ? client.Get(args[0]) : client.Cancel(args[0]);
    if (!job.ok()) return job.status();
    PrintJob(*job, /*with_result=*/command == "get");
    return absl::OkStatus();
  }
  return Usage(absl::StrCat("unknown command '", command,
                            "'; commands: demo, submit, watch, get, list, cancel, health, tuner, "
                            "blob, fir, sor, quantize"));
}

}  // namespace solverd::client
