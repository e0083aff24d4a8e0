// The solverctl commands. Each returns OK only when the command (and, for
// demo/watch/submit --watch, the job) succeeded; main() maps that to the
// exit status.
// Each command runs on the calling thread; not meant to run two at once
// (they share stdout).
#ifndef SOLVERD_CLIENT_COMMANDS_H_
#define SOLVERD_CLIENT_COMMANDS_H_

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

// blob upload FILE | blob download BLOB_ID OUT.
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
