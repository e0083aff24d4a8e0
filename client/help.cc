#include "client/help.h"

#include <vector>

#include "absl/flags/reflection.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace solverd::client {
namespace {

struct CommandHelp {
  const char* name;
  const char* usage;  // lines after "solverctl "
  std::vector<const char*> flags;
};

const std::vector<CommandHelp>& Commands() {
  static const auto* commands = new std::vector<CommandHelp>{
      {"demo", "demo ot|sor|dmmv|quant   a generated problem, watched to the end",
       {"n", "m", "dim", "eta", "method", "seed", "side", "systems", "algorithm", "context_min",
        "context_max", "order", "bits", "passband", "stopband", "type", "priority", "deadline",
        "device"}},
      {"submit",
       "submit FILE.json [--watch]   a JobSpec in proto3 JSON; {\"file\": PATH} in place\n"
       "      of a blob id uploads PATH (relative to the JSON) first",
       {"watch", "priority", "deadline", "device"}},
      {"watch", "watch JOB   its events to the end (reconnects if the stream drops)",
       {"from_event"}},
      {"get", "get JOB   the job and a summary of its result", {}},
      {"cancel", "cancel JOB", {}},
      {"list", "list   jobs, newest first", {"state", "family", "page_size", "all"}},
      {"health", "health   exit 0 when the server is SERVING", {"timeout", "service"}},
      {"tuner",
       "tuner create NAME | tuner get NAME | tuner list | tuner delete NAME\n"
       "      (sor tuners)",
       {"algorithm", "context_min", "context_max", "seed"}},
      {"blob",
       "blob upload FILE | blob download BLOB_ID OUT | blob list | blob delete BLOB_ID\n"
       "      files streamed in chunks, SHA-256 checked, nothing left behind on failure",
       {}},
      {"fir", "fir   an FIR filter with integer coefficients (dmmv)",
       {"order", "bits", "passband", "stopband", "type", "out", "seed"}},
      {"sor", "sor solve A.mtx B.txt   A x = b, A in Matrix Market, b one number per\n"
              "      line (or one right-hand side per line)",
       {"method", "tuner", "omega", "tolerance", "out"}},
      {"quantize",
       "quantize MODEL   a safetensors file or checkpoint folder, output to --out",
       {"method", "bits", "group_size", "symmetric", "calibration", "format", "gguf_type",
        "out"}},
  };
  return *commands;
}

// Flags every command takes.
const std::vector<const char*>& CommonFlags() {
  static const auto* flags = new std::vector<const char*>{"server", "tls_ca", "tls_cert",
                                                          "tls_key", "token", "json"};
  return *flags;
}

void AppendFlags(const std::vector<const char*>& names, std::string* out) {
  for (const char* name : names) {
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr) continue;
    const std::string dashed = absl::StrReplaceAll(name, {{"_", "-"}});
    const std::string value = flag->DefaultValue();
    absl::StrAppendFormat(out, "  --%s%s\n      %s\n", dashed,
                          value.empty() ? "" : absl::StrCat(" (default ", value, ")"),
                          flag->Help());
  }
}

}  // namespace

std::string HelpText(const std::string& command) {
  if (command.empty()) {
    std::string out = "usage: solverctl [flags] COMMAND [args]\n\ncommands:\n";
    for (const CommandHelp& c : Commands()) absl::StrAppend(&out, "  solverctl ", c.usage, "\n");
    absl::StrAppend(&out, "\n`solverctl COMMAND --help` shows a command's flags.\n\n"
                          "flags of every command:\n");
    AppendFlags(CommonFlags(), &out);
    absl::StrAppend(&out, "  --version\n      print the version and exit\n");
    return out;
  }
  for (const CommandHelp& c : Commands()) {
    if (command != c.name) continue;
    std::string out = absl::StrCat("usage: solverctl ", c.usage, "\n");
    if (!c.flags.empty()) {
      absl::StrAppend(&out, "\nflags:\n");
      AppendFlags(c.flags, &out);
    }
    absl::StrAppend(&out, "\nand the flags of every command (solverctl --help).\n");
    return out;
  }
  return "";
}

}  // namespace solverd::client
