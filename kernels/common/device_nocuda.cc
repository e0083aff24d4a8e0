// Device queries for builds without the CUDA backend.
#include "common/device.h"

namespace solverd {

bool CudaCompiledIn() { return false; }
int CudaDeviceCount() { return 0; }
std::string CudaDeviceName(int) { return ""; }

Status CudaMemoryInfo(int, size_t*, size_t*) {
  return FailedPrecondition("solverd was built without CUDA");
}

Status CreateStream(int, StreamHandle*) {
  return FailedPrecondition("solverd was built without CUDA");
}

void DestroyStream(StreamHandle) {}

}  // namespace solverd
