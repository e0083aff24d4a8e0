// Error checking for CUDA runtime calls, for .cu files only.
//
// Every CUDA call and kernel launch in kernels/ goes through these, so a
// failure becomes a Status naming the call instead of a silent wrong answer.
// Define SOLVERD_CUDA_SYNC_CHECKS to synchronise after each launch (debug
// aid: pins an asynchronous fault on the launch that caused it).
// Stateless macros and functions, safe from any thread.
#ifndef SOLVERD_KERNELS_COMMON_CUDA_CHECK_H_
#define SOLVERD_KERNELS_COMMON_CUDA_CHECK_H_

#include <cuda_runtime.h>

#include <string>

#include "common/status.h"

namespace solverd::internal {

inline Status CudaStatus(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status::Ok();
  std::string msg = std::string(what) + ": " + cudaGetErrorString(err);
  if (err == cudaErrorMemoryAllocation) return ResourceExhausted(msg);
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver ||
      err == cudaErrorInvalidDevice) {
    return FailedPrecondition(msg);
  }
  return Internal(msg);
}

inline Status CheckLaunch(const char* kernel, cudaStream_t stream) {
  SOLVERD_RETURN_IF_ERROR(CudaStatus(cudaGetLastError(), kernel));
#ifdef SOLVERD_CUDA_SYNC_CHECKS
  SOLVERD_RETURN_IF_ERROR(CudaStatus(cudaStreamSynchronize(stream), kernel));
#else
  (void)stream;
#endif
  return Status::Ok();
}

}  // namespace solverd::internal

#define SOLVERD_CUDA_RETURN_IF_ERROR(call) \
  SOLVERD_RETURN_IF_ERROR(::solverd::internal::CudaStatus((call), #call))

#endif  // SOLVERD_KERNELS_COMMON_CUDA_CHECK_H_
