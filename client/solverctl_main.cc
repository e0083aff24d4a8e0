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
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/commands.h"
#include "client/help.h"
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
ABSL_FLAG(std::string, method, "",
          "demo ot: auto (default), sinkhorn or sns; sor solve: ssor-cg (default), sor, ssor, "
          "cg; quantize: rtn (default; demo quant: gptq), gptq, dmmv, nf4, int8-blockwise, hqq");
ABSL_FLAG(int, order, 40, "fir, demo dmmv: filter order (even)");
ABSL_FLAG(int, bits, 0,
          "fir: coefficient bits (0: 8); quantize: bits per weight (0: 4; nf4 is 4-bit, "
          "int8-blockwise 8-bit)");
ABSL_FLAG(std::string, passband, "0.2",
          "fir: passband edge(s), fractions of Nyquist (bandpass: LO,HI)");
ABSL_FLAG(std::string, stopband, "0.3",
          "fir: stopband edge(s), fractions of Nyquist (bandpass: LOW_END,HIGH_START)");
ABSL_FLAG(std::string, type, "lowpass", "fir: lowpass, highpass or bandpass");
ABSL_FLAG(std::string, out, "",
          "fir: write the taps as JSON; sor solve: write x; quantize: the output file or folder");
ABSL_FLAG(std::string, tuner, "", "sor solve: a tuner that chooses omega");
ABSL_FLAG(double, omega, 0, "sor solve: a fixed omega without a tuner (0: 1)");
ABSL_FLAG(double, tolerance, 0, "sor solve: relative residual to reach (0: 1e-8)");
ABSL_FLAG(std::string, calibration, "", "quantize: calibration file (inputs or Hessians)");
ABSL_FLAG(std::string, format, "solverd", "quantize: output format: solverd, gptq or gguf");
ABSL_FLAG(int64_t, group_size, 0,
          "quantize: columns per scale (0: the method's default, 128, or 64 weights per block "
          "for nf4 and int8-blockwise; -1: one group per row)");
ABSL_FLAG(bool, symmetric, false, "quantize: zero point at the grid's middle");
ABSL_FLAG(std::string, gguf_type, "from-bits",
          "quantize --format=gguf: from-bits (Q4_0/Q8_0: --symmetric, --group-size=32), f16, "
          "q4_k, q5_k, q6_k or q4_k_m");
ABSL_FLAG(int, side, 32, "demo sor: grid side (n = side^2 unknowns)");
ABSL_FLAG(int, systems, 24, "demo sor: systems in the sequence");
ABSL_FLAG(uint64_t, seed, 1, "demo: random seed");
ABSL_FLAG(std::string, algorithm, "tsallis-inf",
          "tuner create, demo sor: tsallis-inf, tsallis-inf-cb, chebcb, grid-oracle or fixed");
ABSL_FLAG(double, context_min, 0, "tuner create, demo sor: lower end of the context range");
ABSL_FLAG(double, context_max, 1, "tuner create, demo sor: upper end of the context range");
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

// --help, -h (with a command: its flags) or --version: what to print, and
// true; false when the command line asks for neither.
bool HelpOrVersion(const std::vector<std::string>& args, std::string* text) {
  bool help = false, version = false;
  std::string command;
  for (size_t k = 1; k < args.size(); ++k) {
    const std::string& a = args[k];
    help = help || a == "--help" || a == "-h" || a == "--helpfull" || a == "--helpshort" ||
           a == "-help";
    version = version || a == "--version";
    if (command.empty() && a[0] != '-' && !solverd::client::HelpText(a).empty()) command = a;
  }
  if (version) *text = "solverctl " SOLVERD_VERSION "\n";
  if (help) *text = solverd::client::HelpText(command);
  return help || version;
}

int main(int argc, char** argv) {
  std::vector<std::string> args = solverd::NormalizeFlagNames(argc, argv);
  if (std::string text; HelpOrVersion(args, &text)) {
    std::fputs(text.c_str(), stdout);
    return 0;
  }
  std::vector<char*> argv2 = solverd::ArgvOf(args);
  std::vector<char*> positional = absl::ParseCommandLine(static_cast<int>(argv2.size()), argv2.data());
  if (positional.size() < 2) {
    std::fputs(solverd::client::HelpText("").c_str(), stderr);
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
