// Lets the binaries accept --flag-name as well as Abseil's --flag_name, so
// the documented interface (--metrics-port, --grace-period, ...) works as
// written. Header-only: solverd and solverctl both use it.
// Pure functions, safe from any thread. util/ holds what both client/ and
// server/ use and includes only the standard library.
#ifndef SOLVERD_UTIL_FLAG_NAMES_H_
#define SOLVERD_UTIL_FLAG_NAMES_H_

#include <cstring>
#include <string>
#include <vector>

namespace solverd {

// Rewrites dashes in the name part of each "--name[=value]" argument to
// underscores; values and positional arguments are left alone, and so is
// everything after a bare "--".
inline std::vector<std::string> NormalizeFlagNames(int argc, char** argv) {
  std::vector<std::string> out(argv, argv + argc);
  for (size_t i = 1; i < out.size(); ++i) {
    std::string& a = out[i];
    if (a == "--") break;
    if (a.size() < 3 || a[0] != '-' || a[1] != '-') continue;
    const size_t end = std::min(a.find('='), a.size());
    for (size_t k = 2; k < end; ++k) {
      if (a[k] == '-') a[k] = '_';
    }
  }
  return out;
}

// argv-style view of `args`, valid while `args` lives.
inline std::vector<char*> ArgvOf(std::vector<std::string>& args) {
  std::vector<char*> out;
  for (auto& a : args) out.push_back(a.data());
  return out;
}

}  // namespace solverd

#endif  // SOLVERD_UTIL_FLAG_NAMES_H_
