// Fuzzes the Matrix Market reader (sor matrices uploaded as blobs or named
// under --data-root): any bytes give a matrix or a clear error.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "server/families/sor/matrix_market.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)solverd::server::ParseMatrixMarket(
      absl::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  return 0;
}
