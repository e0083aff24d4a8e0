// Device queries for builds with the CUDA backend.
#include <cuda_runtime.h>

#include "common/cuda_check.h"
#include "common/device.h"

namespace solverd {

bool CudaCompiledIn() { return true; }

int CudaDeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

std::string CudaDeviceName(int index) {
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) return "";
  return prop.name;
}

Status CudaMemoryInfo(int index, size_t* free_bytes, size_t* total_bytes) {
  SOLVERD_CUDA_RETURN_IF_ERROR(cudaSetDevice(index));
  SOLVERD_CUDA_RETURN_IF_ERROR(cudaMemGetInfo(free_bytes, total_bytes));
  return Status::Ok();
}

Status CreateStream(int index, StreamHandle* stream) {
  SOLVERD_CUDA_RETURN_IF_ERROR(cudaSetDevice(index));
  cudaStream_t s;
  SOLVERD_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  *stream = s;
  return Status::Ok();
}

void DestroyStream(StreamHandle stream) {
  if (stream != nullptr) cudaStreamDestroy(static_cast<cudaStream_t>(stream));
}

}  // namespace solverd
