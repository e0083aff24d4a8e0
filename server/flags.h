// Command-line flags of the solverd binary, turned into ServerOptions in
// one place. The flag names are an interface: deploy/ and tests use them.
// Call once, from main(), before any other thread starts (not
// thread-safe: Abseil's flags are read as parsed).
#ifndef SOLVERD_SERVER_FLAGS_H_
#define SOLVERD_SERVER_FLAGS_H_

#include "absl/status/statusor.h"
#include "server/options.h"

namespace solverd::server {

// Reads the parsed flags; INVALID_ARGUMENT names a bad flag.
absl::StatusOr<ServerOptions> OptionsFromFlags();

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_FLAGS_H_
