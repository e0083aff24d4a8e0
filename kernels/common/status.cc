#include "common/status.h"

namespace solverd {

std::string Status::ToString() const {
  static const char* const kNames[] = {
      "OK", "CANCELLED", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "UNIMPLEMENTED", "INTERNAL"};
  std::string out = kNames[static_cast<int>(code_)];
  if (!message_.empty()) out += ": " + message_;
  return out;
}

}  // namespace solverd
