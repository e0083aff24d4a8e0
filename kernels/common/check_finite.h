// CheckFinite: the problem-validation check every family runs on its dense
// inputs, with one message format ("cost: entry 3 is not finite").
// Pure functions, safe from any thread.
#ifndef SOLVERD_KERNELS_COMMON_CHECK_FINITE_H_
#define SOLVERD_KERNELS_COMMON_CHECK_FINITE_H_

#include <cmath>
#include <string>
#include <vector>

#include "common/status.h"

namespace solverd {

// INVALID_ARGUMENT naming `field` and the first entry of `v` that is NaN
// or infinite; OK when every entry is finite.
template <typename T>
Status CheckFinite(const std::vector<T>& v, const char* field) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) {
      return InvalidArgument(std::string(field) + ": entry " + std::to_string(i) +
                             " is not finite");
    }
  }
  return Status::Ok();
}

}  // namespace solverd

#endif  // SOLVERD_KERNELS_COMMON_CHECK_FINITE_H_
