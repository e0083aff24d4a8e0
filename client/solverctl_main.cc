// solverctl: command-line client for solverd.
//
//   solverctl [--server=HOST:PORT] <command> [args] [flags]
//
// Exit status 0 only when the command (and, for demo/watch, the job)
// succeeded; 2 for usage errors; 1 otherwise.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/commands.h"
#include "util/flag_names.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051",
          "solverd address HOST:PORT, or replicas on a shared store: dns:///NAME:PORT or "
          "ipv4:HOST:PORT,HOST:PORT (calls balanced round-robin)");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA of the server's certificate: connect over TLS");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate, for servers with --tls_client_ca");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, token, "",
          "bearer token for servers with --auth_tokens_file (default: $SOLVERD_TOKEN)");
ABSL_FLAG(bool, json, false, "machine output: one JSON object per line");
ABSL_FLAG(int64_t, from_event, 0, "watch: first event number to stream (resume point)");
ABSL_FLAG(bool, watch, false, "submit: watch the job to the end");
ABSL_FLAG(int, priority, 0, "submit/demo: job priority (higher runs first)");
ABSL_FLAG(absl::Duration, deadline, absl::ZeroDuration(), "submit/demo: job deadline, e.g. 30s");
ABSL_FLAG(std::string, device, "any", "submit/demo: any, cpu or cuda");
ABSL_FLAG(std::string, state, "", "list: only jobs in this state");
ABSL_FLAG(std::string, family, "", "list: only jobs of this family");
ABSL_FLAG(int, page_size, 100, "list: jobs per page");
ABSL_FLAG(bool, all, false, "list: follow every page");
ABSL_FLAG(int64_t, n, 500, "demo ot: source points");
ABSL_FLAG(int64_t, m, 0, "demo ot: target points (0: same as --n)");
ABSL_FLAG(int, dim, 2, "demo ot: point dimension");
ABSL_FLAG(double, eta, 20, "demo ot: inverse regularisation");
ABSL_FLAG(std::string, method, "auto", "demo ot: auto, sinkhorn or sns");
ABSL_FLAG(uint64_t, seed, 1, "demo: random seed");
ABSL_FLAG(std::string, algorithm, "tsallis-inf",
          "tuner create: tsallis-inf, tsallis-inf-cb, chebcb, grid-oracle or fixed");
ABSL_FLAG(double, context_min, 0, "tuner create: lower end of the context range");
ABSL_FLAG(double, context_max, 1, "tuner create: upper end of the context range");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(5), "health: RPC timeout");
ABSL_FLAG(std::string, service, "", "health: service name (empty: the whole server)");

// The file's contents, or INVALID_ARGUMENT naming the flag.
absl::StatusOr<std::string> ReadFlagFile(absl::string_view flag, const std::string& path) {
  if (path.empty()) return std::string();
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--", flag, ": cannot read ", path));
  return text.str();
}

absl::StatusOr<solverd::client::ClientSecurity> SecurityFromFlags() {
  solverd::client::ClientSecurity security;
  for (auto [flag, path, into] :
       {std::tuple{"tls_ca", absl::GetFlag(FLAGS_tls_ca), &security.tls_ca},
        std::tuple{"tls_cert", absl::GetFlag(FLAGS_tls_cert), &security.tls_cert},
        std::tuple{"tls_key", absl::GetFlag(FLAGS_tls_key), &security.tls_key}}) {
    auto text = ReadFlagFile(flag, path);
    if (!text.ok()) return text.status();
    *into = *std::move(text);
  }
  if (security.tls_ca.empty() && !security.tls_cert.empty()) {
    return absl::InvalidArgumentError("--tls_cert: needs --tls_ca (TLS)");
  }
  security.token = absl::GetFlag(FLAGS_token);
  if (const char* env = std::getenv("SOLVERD_TOKEN"); security.token.empty() && env != nullptr) {
    security.token = env;
  }
  return security;
}

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "solverctl [--server=HOST:PORT] <command> [args]\n"
      "commands:\n"
      "  demo ot [--n=500]        submit a random problem and watch it to the end\n"
      "  submit FILE.json [--watch]  submit a JobSpec in JSON; {\"file\": PATH} in place of a\n"
      "                           blob id uploads PATH first\n"
      "  blob upload FILE | blob download BLOB_ID OUT   stream a file up or down\n"
      "  watch JOB [--from-event=N] [--json]\n"
      "  get JOB | cancel JOB | list [--state=S] [--family=F] [--all]\n"
      "  health                   exit 0 when the server is SERVING\n"
      "  tuner create NAME [--algorithm=A] [--context-min=X --context-max=Y] [--seed=N]\n"
      "  tuner get NAME | tuner list | tuner delete NAME   (sor tuners, as JSON)");
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view f) { return absl::StrContains(f, "client/"); };
  absl::SetFlagsUsageConfig(usage);
  std::vector<std::string> args = solverd::NormalizeFlagNames(argc, argv);
  std::vector<char*> argv2 = solverd::ArgvOf(args);
  std::vector<char*> positional = absl::ParseCommandLine(static_cast<int>(argv2.size()), argv2.data());
  if (positional.size() < 2) {
    std::fprintf(stderr, "%s\n", absl::ProgramUsageMessage().data());
    return 2;
  }
  absl::StatusOr<solverd::client::ClientSecurity> security = SecurityFromFlags();
  if (!security.ok()) {
    std::fprintf(stderr, "solverctl: %s\n", security.status().ToString().c_str());
    return 2;
  }
  solverd::client::SolverClient client(absl::GetFlag(FLAGS_server), *security);
  const std::string command = positional[1];
  std::vector<std::string> rest(positional.begin() + 2, positional.end());
  absl::Status s = solverd::client::RunCommand(client, command, rest);
  if (!s.ok()) {
    std::fprintf(stderr, "solverctl %s: %s\n", command.c_str(), s.ToString().c_str());
    return absl::IsInvalidArgument(s) && s.message().rfind("usage:", 0) == 0 ? 2 : 1;
  }
  return 0;
}
