// The CUDA SorBackend: one kernel launch per colour per sweep on the lane's
// stream (rows of a colour are uncoupled, so a thread relaxes one row with
// the shared RelaxRow), CSR SpMV and residual kernels, and dot products
// reduced on the device in two deterministic passes (fixed block order, so
// a solve is bitwise reproducible on one GPU).
#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "common/cuda_check.h"
#include "common/device_buffer.cuh"
#include "sor/sor_backend.h"
#include "sor/sor_math.h"

namespace solverd::sor::internal {
namespace {

using ::solverd::internal::CheckLaunch;

constexpr int kThreads = 256;
constexpr int kMaxReduceBlocks = 1024;  // = the threads of the final pass

__global__ void RelaxGroupKernel(OrderedCsrView a, int64_t begin, int64_t count,
                                 const double* rhs, double omega, double* x) {
  const int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (k < count) RelaxRow(a, begin + k, rhs, omega, x);
}

__global__ void ResidualKernel(OrderedCsrView a, int32_t n, const double* x, const double* rhs,
                               double* out) {
  const int32_t slot = blockIdx.x * blockDim.x + threadIdx.x;
  if (slot >= n) return;
  const int32_t i = a.rows[slot];
  out[i] = rhs[i] - RowProduct(a, slot, x);
}

__global__ void MultiplyKernel(OrderedCsrView a, int32_t n, const double* x, double* out) {
  const int32_t slot = blockIdx.x * blockDim.x + threadIdx.x;
  if (slot < n) out[a.rows[slot]] = RowProduct(a, slot, x);
}

__device__ double BlockSum(double v) {
  __shared__ double shared[kMaxReduceBlocks / 32];
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = threadIdx.x < blockDim.x / 32 ? shared[threadIdx.x] : 0.0;
  if (warp == 0) {
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  }
  return v;
}

__global__ void DotPartialsKernel(const double* u, const double* v, int32_t n, double* partials) {
  double sum = 0;
  for (int32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    sum += u[i] * v[i];
  }
  sum = BlockSum(sum);
  if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

__global__ void SumPartialsKernel(const double* partials, int count, double* out) {
  const double v = BlockSum(threadIdx.x < count ? partials[threadIdx.x] : 0.0);
  if (threadIdx.x == 0) *out = v;
}

__global__ void AxpyKernel(double alpha, const double* x, double* y, int32_t n) {
  const int32_t i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] += alpha * x[i];
}

__global__ void XpayKernel(const double* x, double beta, double* y, int32_t n) {
  const int32_t i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = x[i] + beta * y[i];
}

unsigned BlocksFor(int64_t count) { return static_cast<unsigned>((count + kThreads - 1) / kThreads); }

class CudaBackend final : public SorBackend {
 public:
  CudaBackend(const SweepOrder& order, cudaStream_t stream) : order_(order), stream_(stream) {}

  Status Init(const CsrMatrix& a) {
    n_ = a.n;
    // Rows in sweep order: a colour's rows are contiguous on the device.
    const CsrMatrix ordered = RowsInSweepOrder(a, order_);
    SOLVERD_RETURN_IF_ERROR(row_ptr_.Upload(ordered.row_ptr.data(), ordered.row_ptr.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(col_idx_.Upload(ordered.col_idx.data(), ordered.col_idx.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(values_.Upload(ordered.values.data(), ordered.values.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(rows_.Upload(order_.rows.data(), order_.rows.size(), stream_));
    // `ordered` dies with this call; the copies must be done first.
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    for (auto& v : vectors_) SOLVERD_RETURN_IF_ERROR(v.Allocate(n_));
    SOLVERD_RETURN_IF_ERROR(partials_.Allocate(kMaxReduceBlocks + 1));
    return Status::Ok();
  }

  Status Upload(Vec v, const std::vector<double>& host) override {
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(vectors_[v].data(), host.data(),
                                                 n_ * sizeof(double), cudaMemcpyHostToDevice,
                                                 stream_));
    // `host` may go away when we return.
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return Status::Ok();
  }
  Status Download(Vec v, std::vector<double>* host) override {
    host->resize(n_);
    return vectors_[v].Download(host->data(), stream_);
  }
  Status Zero(Vec v) override {
    SOLVERD_CUDA_RETURN_IF_ERROR(
        cudaMemsetAsync(vectors_[v].data(), 0, n_ * sizeof(double), stream_));
    return Status::Ok();
  }

  Status Sweep(Vec x, Vec rhs, double omega, bool forward) override {
    const int64_t groups = order_.groups();
    for (int64_t step = 0; step < groups; ++step) {
      const int64_t g = forward ? step : groups - 1 - step;
      const int64_t begin = order_.group_ptr[g];
      const int64_t count = order_.group_ptr[g + 1] - begin;
      if (count == 0) continue;
      RelaxGroupKernel<<<BlocksFor(count), kThreads, 0, stream_>>>(
          View(), begin, count, vectors_[rhs].data(), omega, vectors_[x].data());
      SOLVERD_RETURN_IF_ERROR(CheckLaunch("RelaxGroupKernel", stream_));
    }
    return Status::Ok();
  }
  Status Residual(Vec x, Vec rhs, Vec out) override {
    ResidualKernel<<<BlocksFor(n_), kThreads, 0, stream_>>>(
        View(), n_, vectors_[x].data(), vectors_[rhs].data(), vectors_[out].data());
    return CheckLaunch("ResidualKernel", stream_);
  }
  Status Multiply(Vec x, Vec out) override {
    MultiplyKernel<<<BlocksFor(n_), kThreads, 0, stream_>>>(View(), n_, vectors_[x].data(),
                                                            vectors_[out].data());
    return CheckLaunch("MultiplyKernel", stream_);
  }
  Status Dot(Vec u, Vec v, double* out) override {
    const int blocks = static_cast<int>(std::min<int64_t>(BlocksFor(n_), kMaxReduceBlocks));
    DotPartialsKernel<<<blocks, kThreads, 0, stream_>>>(vectors_[u].data(), vectors_[v].data(),
                                                        n_, partials_.data());
    SOLVERD_RETURN_IF_ERROR(CheckLaunch("DotPartialsKernel", stream_));
    double* total = partials_.data() + kMaxReduceBlocks;
    SumPartialsKernel<<<1, kMaxReduceBlocks, 0, stream_>>>(partials_.data(), blocks, total);
    SOLVERD_RETURN_IF_ERROR(CheckLaunch("SumPartialsKernel", stream_));
    SOLVERD_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(out, total, sizeof(double), cudaMemcpyDeviceToHost, stream_));
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return Status::Ok();
  }
  Status Axpy(double alpha, Vec x, Vec y) override {
    AxpyKernel<<<BlocksFor(n_), kThreads, 0, stream_>>>(alpha, vectors_[x].data(),
                                                        vectors_[y].data(), n_);
    return CheckLaunch("AxpyKernel", stream_);
  }
  Status Xpay(Vec x, double beta, Vec y) override {
    XpayKernel<<<BlocksFor(n_), kThreads, 0, stream_>>>(vectors_[x].data(), beta,
                                                        vectors_[y].data(), n_);
    return CheckLaunch("XpayKernel", stream_);
  }

 private:
  OrderedCsrView View() const {
    return {row_ptr_.data(), col_idx_.data(), values_.data(), rows_.data()};
  }

  const SweepOrder& order_;
  const cudaStream_t stream_;
  int32_t n_ = 0;
  DeviceBuffer<int64_t> row_ptr_;
  DeviceBuffer<int32_t> col_idx_;
  DeviceBuffer<double> values_;
  DeviceBuffer<int32_t> rows_;
  DeviceBuffer<double> vectors_[kVectors];
  DeviceBuffer<double> partials_;
};

}  // namespace

Status MakeCudaBackend(const Device& device, StreamHandle stream, const CsrMatrix& a,
                       const SweepOrder& order, std::unique_ptr<SorBackend>* backend) {
  if (!order.parallel) {
    return InvalidArgument("ordering: natural ordering is sequential and runs on the CPU only");
  }
  SOLVERD_CUDA_RETURN_IF_ERROR(cudaSetDevice(device.index));
  auto cuda = std::make_unique<CudaBackend>(order, static_cast<cudaStream_t>(stream));
  SOLVERD_RETURN_IF_ERROR(cuda->Init(a));
  *backend = std::move(cuda);
  return Status::Ok();
}

}  // namespace solverd::sor::internal
