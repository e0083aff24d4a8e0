// Device: where a solver runs (the CPU, or CUDA device N), and the few
// device queries the server needs (count, name, memory).
//
// Streams are passed around as an opaque StreamHandle so that headers seen
// by plain C++ code need no CUDA include; a null handle is the default
// stream. All functions are thread-safe. On a build without CUDA, the CUDA
// functions report zero devices or FAILED_PRECONDITION.
#ifndef SOLVERD_KERNELS_COMMON_DEVICE_H_
#define SOLVERD_KERNELS_COMMON_DEVICE_H_

#include <cstddef>
#include <string>

#include "common/status.h"

namespace solverd {

using StreamHandle = void*;  // cudaStream_t on CUDA builds

struct Device {
  enum class Kind { kCpu, kCuda };
  Kind kind = Kind::kCpu;
  int index = 0;  // CUDA ordinal; ignored for the CPU

  static Device Cpu() { return {}; }
  static Device Cuda(int index) { return {Kind::kCuda, index}; }
  bool is_cuda() const { return kind == Kind::kCuda; }
  std::string ToString() const {  // "cpu" or "cuda:N"
    return is_cuda() ? "cuda:" + std::to_string(index) : "cpu";
  }
};

// True when this library was compiled with the CUDA backend.
bool CudaCompiledIn();

// Number of usable CUDA devices; 0 without a driver, a GPU, or CUDA support.
int CudaDeviceCount();

// Marketing name of CUDA device `index`, e.g. "NVIDIA H100 80GB HBM3".
std::string CudaDeviceName(int index);

// Free and total memory of CUDA device `index`.
Status CudaMemoryInfo(int index, size_t* free_bytes, size_t* total_bytes);

// Creates a non-blocking stream on device `index`. Caller owns it and
// releases it with DestroyStream().
Status CreateStream(int index, StreamHandle* stream);
void DestroyStream(StreamHandle stream);

}  // namespace solverd

#endif  // SOLVERD_KERNELS_COMMON_DEVICE_H_
