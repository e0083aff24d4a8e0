// DeviceBuffer<T>: an owning, move-only array in CUDA device memory.
//
// Allocation failures come back as a Status (RESOURCE_EXHAUSTED for out of
// memory) from Allocate(), never as an exception. Not thread-safe.
#ifndef SOLVERD_KERNELS_COMMON_DEVICE_BUFFER_CUH_
#define SOLVERD_KERNELS_COMMON_DEVICE_BUFFER_CUH_

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "common/cuda_check.h"

namespace solverd {

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { Reset(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)),
                                             size_(std::exchange(o.size_, 0)) {}

  Status Allocate(size_t count) {
    Reset();
    if (count == 0) return Status::Ok();
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaMalloc(&data_, count * sizeof(T)));
    size_ = count;
    return Status::Ok();
  }
  // Allocates and copies `count` host values in, ordered on `stream`.
  Status Upload(const T* host, size_t count, cudaStream_t stream) {
    SOLVERD_RETURN_IF_ERROR(Allocate(count));
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(data_, host, count * sizeof(T),
                                                 cudaMemcpyHostToDevice, stream));
    return Status::Ok();
  }
  // Makes room for `count` values, growing to at least twice the old size
  // (contents are not kept), so buffers reused every round of a search do
  // not allocate every round.
  Status Reserve(size_t count) {
    return size_ >= count ? Status::Ok() : Allocate(count > 2 * size_ ? count : 2 * size_);
  }
  // Reserve(count), then copies `count` host values in, ordered on `stream`.
  Status UploadReserved(const T* host, size_t count, cudaStream_t stream) {
    SOLVERD_RETURN_IF_ERROR(Reserve(count));
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(data_, host, count * sizeof(T),
                                                 cudaMemcpyHostToDevice, stream));
    return Status::Ok();
  }
  // Copies values [offset, offset + count) out and waits for them.
  Status DownloadRange(size_t offset, size_t count, T* host, cudaStream_t stream) const {
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host, data_ + offset, count * sizeof(T),
                                                 cudaMemcpyDeviceToHost, stream));
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
    return Status::Ok();
  }
  // Copies the whole buffer out and waits for it.
  Status Download(T* host, cudaStream_t stream) const {
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host, data_, size_ * sizeof(T),
                                                 cudaMemcpyDeviceToHost, stream));
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
    return Status::Ok();
  }
  void Reset() {
    if (data_ != nullptr) cudaFree(data_);
    data_ = nullptr;
    size_ = 0;
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  T* data_ = nullptr;
  size_t size_ = 0;
};

// Blocks of `threads` that cover `items`.
inline unsigned BlocksFor(long long items, int threads) {
  return static_cast<unsigned>((items + threads - 1) / threads);
}

}  // namespace solverd

#endif  // SOLVERD_KERNELS_COMMON_DEVICE_BUFFER_CUH_
