// solverd: the solver service binary. Parses flags, starts the server,
// and on SIGTERM/SIGINT shuts down gracefully and exits 0.
#include <malloc.h>

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/parse.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "common/device.h"
#include "util/flag_names.h"
#include "server/flags.h"
#include "server/server.h"

namespace {

// Writes "<grpc_port> <metrics_port>" atomically (temp + rename), so a
// reader never sees a half-written file.
bool WritePortFile(const std::string& path, int grpc_port, int metrics_port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << grpc_port << " " << metrics_port << "\n";
    if (!out) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

// True when the kernel backs anonymous memory with transparent huge pages
// only where a process asks (madvise), as Debian's default is.
bool HugePagesOnRequest() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string modes;
  std::getline(in, modes);
  return absl::StrContains(modes, "[madvise]");
}

// Runs this binary again with glibc's malloc asking for transparent huge
// pages (the tunable glibc.malloc.hugetlb, read only at startup), unless
// it has it or SOLVERD_HUGE_PAGES=0. Problems and blobs arrive in large
// fresh buffers, each touched page by page; on a VM a 4 KiB page fault
// costs more than the copy that causes it: a 200 MB blob's upload and
// submit took 2.2-2.9 s with 4 KiB pages and 0.7-1.2 s with 2 MiB ones
// (bench/ot's pot_n5000). Returns only when it did not run again.
void RunAgainWithHugePages(char** argv) {
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  const char* wanted = std::getenv("SOLVERD_HUGE_PAGES");
  if ((wanted != nullptr && std::string(wanted) == "0") ||
      (tunables != nullptr && absl::StrContains(tunables, "glibc.malloc.hugetlb")) ||
      !HugePagesOnRequest()) {
    return;
  }
  const std::string value = tunables != nullptr && *tunables != '\0'
                                ? absl::StrCat(tunables, ":glibc.malloc.hugetlb=1")
                                : std::string("glibc.malloc.hugetlb=1");
  if (setenv("GLIBC_TUNABLES", value.c_str(), 1) != 0) return;
  execv("/proc/self/exe", argv);
  unsetenv("GLIBC_TUNABLES");  // exec failed: go on as we are
  if (tunables != nullptr) setenv("GLIBC_TUNABLES", tunables, 1);
}

}  // namespace

int main(int argc, char** argv) {
  RunAgainWithHugePages(argv);
  // A large request (a 5 MB cost matrix) passes through fresh buffers in
  // gRPC and protobuf; glibc maps each one afresh and unmaps it when freed,
  // and on a VM those page faults cost more than the copies (an 800 x 800
  // submit: 70-110 ms instead of 12-14, bench/ot's overhead_n800). Blocks
  // under 32 MiB stay in the heap, which is trimmed past 256 MiB free.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  absl::SetProgramUsageMessage(
      "GPU solver service (gRPC). Example: solverd --listen=127.0.0.1:50051 "
      "--metrics-port=9464\nFlag names take dashes or underscores (--grace-period).");
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "server/");
  };
  usage.version_string = [] { return std::string("solverd " SOLVERD_VERSION "\n"); };
  absl::SetFlagsUsageConfig(usage);
  std::vector<std::string> args = solverd::NormalizeFlagNames(argc, argv);
  std::vector<char*> argv2 = solverd::ArgvOf(args);
  absl::ParseCommandLine(static_cast<int>(argv2.size()), argv2.data());

  // Block the stop signals before any thread starts so that only the
  // sigwait() below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto options = solverd::server::OptionsFromFlags();
  if (!options.ok()) {
    std::fprintf(stderr, "solverd: %s\n", options.status().ToString().c_str());
    return 2;
  }
  auto server = solverd::server::SolverServer::Start(*options);
  if (!server.ok()) {
    std::fprintf(stderr, "solverd: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::string lanes;
  for (const auto& lane : (*server)->lanes()) absl::StrAppend(&lanes, lanes.empty() ? "" : ",", lane.name());
  std::fprintf(stderr, "solverd: serving gRPC on port %d, metrics on port %d; lanes: %s\n",
               (*server)->grpc_port(), (*server)->metrics_port(), lanes.c_str());
  if (!options->port_file.empty() &&
      !WritePortFile(options->port_file, (*server)->grpc_port(), (*server)->metrics_port())) {
    std::fprintf(stderr, "solverd: cannot write --port_file %s\n", options->port_file.c_str());
    return 1;
  }

  int signal = 0;
  sigwait(&stop_signals, &signal);
  std::fprintf(stderr, "solverd: signal %d: shutting down (grace period %s)\n", signal,
               absl::FormatDuration(options->grace_period).c_str());
  (*server)->Shutdown();
  std::fprintf(stderr, "solverd: stopped\n");
  return 0;
}
