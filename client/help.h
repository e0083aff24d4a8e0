// solverctl's --help: the commands grouped, and for `solverctl COMMAND
// --help` that command's usage and its own flags only, with defaults, read
// from the flags' registry (never Abseil's listing, which names the build
// machine's source paths and mixes every command's flags).
// Pure functions over the flag registry; call after the flags are defined.
#ifndef SOLVERD_CLIENT_HELP_H_
#define SOLVERD_CLIENT_HELP_H_

#include <string>

namespace solverd::client {

// The help for `command` ("" for the overview); empty if no such command.
std::string HelpText(const std::string& command);

}  // namespace solverd::client

#endif  // SOLVERD_CLIENT_HELP_H_
