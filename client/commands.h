// The solverctl commands. Each returns OK only when the command (and, for
// demo/watch/submit --watch, the job) succeeded; main() maps that to the
// exit status.
// Each command runs on the calling thread; not meant to run two at once
// (they share stdout).
#ifndef SOLVERD_CLIENT_COMMANDS_H_
#define SOLVERD_CLIENT_COMMANDS_H_

#include <cctype>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/solver_client.h"

namespace solverd::client {

// `args` are the positional arguments after the command name.
absl::Status RunCommand(SolverClient& client, const std::string& command,
                        const std::vector<std::string>& args);

// tuner create|get|list|delete (sor tuners).
absl::Status TunerCommand(SolverClient& client, const std::vector<std::string>& args);

// What `tuner create NAME` (and demo sor) asks for: --algorithm, --seed,
// --context-min, --context-max.
absl::StatusOr<v1::CreateTunerRequest> TunerRequestFromFlags(const std::string& name);

// fir, sor solve, quantize, and demo sor|dmmv|quant (task_commands.cc).
absl::Status TaskCommand(SolverClient& client, const std::string& command,
                         const std::vector<std::string>& args);

// quantize MODEL and demo quant (quant_command.cc).
absl::Status Quantize(SolverClient& client, const std::vector<std::string>& args);
absl::Status DemoQuant(SolverClient& client);

// The enum value a flag names: `prefix` + `name` upper-cased, '-' as '_'
// ("tsallis-inf" -> TUNER_ALGORITHM_TSALLIS_INF), by the generated
// `parse` (v1::TunerAlgorithm_Parse, ...); INVALID_ARGUMENT "--FLAG: one
// of CHOICES" for any other name.
template <typename Enum, typename Parse>
absl::StatusOr<Enum> EnumFromFlag(const char* flag, const std::string& prefix,
                                  const std::string& name, const char* choices, Parse parse) {
  Enum value;
  std::string upper = prefix;
  for (char c : name) upper += c == '-' ? '_' : static_cast<char>(std::toupper(c));
  if (!parse(upper, &value)) {
    return absl::InvalidArgumentError(std::string("--") + flag + ": one of " + choices);
  }
  return value;
}

// Submits `spec` (with the --priority, --deadline and --device flags),
// watches it to the end with the usual progress, and returns the finished
// job; an error unless it SUCCEEDED.
absl::StatusOr<v1::Job> RunToEnd(SolverClient& client, v1::JobSpec spec);

// A file streamed up or down with a progress line on stderr (blob_command.cc).
absl::StatusOr<v1::BlobInfo> UploadWithProgress(SolverClient& client, const std::string& path);
absl::StatusOr<int64_t> DownloadWithProgress(SolverClient& client, const std::string& blob_id,
                                             const std::string& path);

// blob upload FILE | blob download BLOB_ID OUT | blob list | blob delete BLOB_ID.
absl::Status BlobCommand(SolverClient& client, const std::vector<std::string>& args);

// `json` (read from `json_path`) with each {"file": PATH} object, wherever
// it stands for a blob id, replaced by the id of PATH uploaded (relative to
// the JSON file's folder). Unchanged when it holds none.
absl::StatusOr<std::string> UploadFileReferences(SolverClient& client, const std::string& json,
                                                 const std::string& json_path);

// Reads a JSON problem file (a JobSpec in proto3 JSON) into *spec,
// uploading the files it refers to.
absl::Status ReadJobSpecFile(SolverClient& client, const std::string& path, v1::JobSpec* spec);

}  // namespace solverd::client

#endif  // SOLVERD_CLIENT_COMMANDS_H_
