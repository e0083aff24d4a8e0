// The CUDA SorBackend: one kernel launch per colour per sweep on the lane's
// stream for the whole batch (blockIdx.y is the system; rows of a colour are
// uncoupled, so a thread relaxes one row with the shared RelaxRow), CSR SpMV
// and residual kernels, and dot products reduced on the device in two
// deterministic passes (fixed block order, so a solve is bitwise
// reproducible on one GPU). Per-system scalars and the active set travel as
// kernel arguments, so no launch waits on a copy.
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

// Which systems a launch touches, and one scalar per system.
struct BatchArgs {
  uint64_t active;
  double scalar[kMaxBatch];
};

// The batch's layout on the device: one pattern, values and vectors per system.
struct BatchView {
  OrderedCsrView pattern;  // values: system 0's
  int64_t nnz;
  int32_t n;

  __device__ OrderedCsrView Of(int s) const {
    OrderedCsrView v = pattern;
    v.values += s * nnz;
    return v;
  }
};

__device__ bool Skip(const BatchArgs& args) { return !((args.active >> blockIdx.y) & 1); }

__device__ int64_t VectorOffset(const BatchView& a) {
  return static_cast<int64_t>(blockIdx.y) * a.n;
}

__global__ void RelaxGroupKernel(BatchView a, int64_t begin, int64_t count, const double* rhs,
                                 BatchArgs args, double* x) {
  const int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (k >= count || Skip(args)) return;
  const int64_t off = VectorOffset(a);
  RelaxRow(a.Of(blockIdx.y), begin + k, rhs + off, args.scalar[blockIdx.y], x + off);
}

__global__ void ResidualKernel(BatchView a, const double* x, const double* rhs, BatchArgs args,
                               double* out) {
  const int32_t slot = blockIdx.x * blockDim.x + threadIdx.x;
  if (slot >= a.n || Skip(args)) return;
  const int64_t off = VectorOffset(a);
  const int32_t i = a.pattern.rows[slot];
  out[off + i] = rhs[off + i] - RowProduct(a.Of(blockIdx.y), slot, x + off);
}

__global__ void MultiplyKernel(BatchView a, const double* x, BatchArgs args, double* out) {
  const int32_t slot = blockIdx.x * blockDim.x + threadIdx.x;
  if (slot >= a.n || Skip(args)) return;
  const int64_t off = VectorOffset(a);
  out[off + a.pattern.rows[slot]] = RowProduct(a.Of(blockIdx.y), slot, x + off);
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

// partials[s * kMaxReduceBlocks + block]; inactive systems' stay unwritten.
__global__ void DotPartialsKernel(const double* u, const double* v, int32_t n, BatchArgs args,
                                  double* partials) {
  if (Skip(args)) return;
  const int64_t off = static_cast<int64_t>(blockIdx.y) * n;
  double sum = 0;
  for (int32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    sum += u[off + i] * v[off + i];
  }
  sum = BlockSum(sum);
  if (threadIdx.x == 0) partials[blockIdx.y * kMaxReduceBlocks + blockIdx.x] = sum;
}

// One block per system (blockIdx.x); inactive systems get 0.
__global__ void SumPartialsKernel(const double* partials, int count, BatchArgs args,
                                  double* out) {
  const int s = blockIdx.x;
  const bool active = (args.active >> s) & 1;
  const double v = BlockSum(active && threadIdx.x < count
                                ? partials[s * kMaxReduceBlocks + threadIdx.x] : 0.0);
  if (threadIdx.x == 0) out[s] = v;
}

__global__ void AxpyKernel(BatchArgs alpha, const double* x, double* y, int32_t n) {
  const int32_t i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n || Skip(alpha)) return;
  const int64_t k = static_cast<int64_t>(blockIdx.y) * n + i;
  y[k] += alpha.scalar[blockIdx.y] * x[k];
}

__global__ void XpayKernel(const double* x, BatchArgs beta, double* y, int32_t n) {
  const int32_t i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n || Skip(beta)) return;
  const int64_t k = static_cast<int64_t>(blockIdx.y) * n + i;
  y[k] = x[k] + beta.scalar[blockIdx.y] * y[k];
}

__global__ void ZeroKernel(double* v, int32_t n, BatchArgs args) {
  const int32_t i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n && !Skip(args)) v[static_cast<int64_t>(blockIdx.y) * n + i] = 0;
}

unsigned BlocksFor(int64_t count) { return static_cast<unsigned>((count + kThreads - 1) / kThreads); }

class CudaBackend final : public SorBackend {
 public:
  CudaBackend(const SweepOrder& order, cudaStream_t stream) : order_(order), stream_(stream) {}

  Status Init(const std::vector<const CsrMatrix*>& systems) {
    batch_ = static_cast<int>(systems.size());
    active_ = batch_ == 64 ? ~uint64_t{0} : (uint64_t{1} << batch_) - 1;
    n_ = systems[0]->n;
    nnz_ = systems[0]->nnz();
    // Rows in sweep order: a colour's rows are contiguous on the device.
    // The shared pattern is reordered once; each system's values follow.
    const CsrMatrix ordered = RowsInSweepOrder(*systems[0], order_);
    std::vector<double> values;
    values.reserve(static_cast<size_t>(batch_) * nnz_);
    values.insert(values.end(), ordered.values.begin(), ordered.values.end());
    for (size_t s = 1; s < systems.size(); ++s) {
      const std::vector<double> more = ValuesInSweepOrder(*systems[s], order_);
      values.insert(values.end(), more.begin(), more.end());
    }
    SOLVERD_RETURN_IF_ERROR(row_ptr_.Upload(ordered.row_ptr.data(), ordered.row_ptr.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(col_idx_.Upload(ordered.col_idx.data(), ordered.col_idx.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(values_.Upload(values.data(), values.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(rows_.Upload(order_.rows.data(), order_.rows.size(), stream_));
    // `ordered` and `values` die with this call; the copies must be done first.
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    for (auto& v : vectors_) SOLVERD_RETURN_IF_ERROR(v.Allocate(static_cast<size_t>(batch_) * n_));
    SOLVERD_RETURN_IF_ERROR(partials_.Allocate(static_cast<size_t>(kMaxBatch + 1) * kMaxReduceBlocks));
    return Status::Ok();
  }

  int batch() const override { return batch_; }
  Status SetActive(uint64_t mask) override {
    active_ = mask;
    return Status::Ok();
  }
  Status Upload(Vec v, int s, const std::vector<double>& host) override {
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(Of(v, s), host.data(), n_ * sizeof(double),
                                                 cudaMemcpyHostToDevice, stream_));
    // `host` may go away when we return.
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return Status::Ok();
  }
  Status Download(Vec v, int s, std::vector<double>* host) override {
    host->resize(n_);
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host->data(), Of(v, s), n_ * sizeof(double),
                                                 cudaMemcpyDeviceToHost, stream_));
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return Status::Ok();
  }
  Status Zero(Vec v) override {
    ZeroKernel<<<Grid(n_), kThreads, 0, stream_>>>(vectors_[v].data(), n_, Args());
    return CheckLaunch("ZeroKernel", stream_);
  }

  Status Sweep(Vec x, Vec rhs, const Scalars& omega, bool forward) override {
    const BatchArgs args = Args(&omega);
    const int64_t groups = order_.groups();
    for (int64_t step = 0; step < groups; ++step) {
      const int64_t g = forward ? step : groups - 1 - step;
      const int64_t begin = order_.group_ptr[g];
      const int64_t count = order_.group_ptr[g + 1] - begin;
      if (count == 0) continue;
      RelaxGroupKernel<<<Grid(count), kThreads, 0, stream_>>>(
          View(), begin, count, vectors_[rhs].data(), args, vectors_[x].data());
      SOLVERD_RETURN_IF_ERROR(CheckLaunch("RelaxGroupKernel", stream_));
    }
    return Status::Ok();
  }
  Status Residual(Vec x, Vec rhs, Vec out) override {
    ResidualKernel<<<Grid(n_), kThreads, 0, stream_>>>(
        View(), vectors_[x].data(), vectors_[rhs].data(), Args(), vectors_[out].data());
    return CheckLaunch("ResidualKernel", stream_);
  }
  Status Multiply(Vec x, Vec out) override {
    MultiplyKernel<<<Grid(n_), kThreads, 0, stream_>>>(View(), vectors_[x].data(), Args(),
                                                       vectors_[out].data());
    return CheckLaunch("MultiplyKernel", stream_);
  }
  Status Dot(Vec u, Vec v, Scalars* out) override {
    const BatchArgs args = Args();
    const unsigned blocks = std::min<unsigned>(BlocksFor(n_), kMaxReduceBlocks);
    DotPartialsKernel<<<dim3(blocks, batch_), kThreads, 0, stream_>>>(
        vectors_[u].data(), vectors_[v].data(), n_, args, partials_.data());
    SOLVERD_RETURN_IF_ERROR(CheckLaunch("DotPartialsKernel", stream_));
    double* totals = partials_.data() + static_cast<size_t>(kMaxBatch) * kMaxReduceBlocks;
    SumPartialsKernel<<<batch_, kMaxReduceBlocks, 0, stream_>>>(partials_.data(), blocks, args,
                                                               totals);
    SOLVERD_RETURN_IF_ERROR(CheckLaunch("SumPartialsKernel", stream_));
    out->resize(batch_);
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(out->data(), totals, batch_ * sizeof(double),
                                                 cudaMemcpyDeviceToHost, stream_));
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return Status::Ok();
  }
  Status Axpy(const Scalars& alpha, Vec x, Vec y) override {
    AxpyKernel<<<Grid(n_), kThreads, 0, stream_>>>(Args(&alpha), vectors_[x].data(),
                                                   vectors_[y].data(), n_);
    return CheckLaunch("AxpyKernel", stream_);
  }
  Status Xpay(Vec x, const Scalars& beta, Vec y) override {
    XpayKernel<<<Grid(n_), kThreads, 0, stream_>>>(vectors_[x].data(), Args(&beta),
                                                   vectors_[y].data(), n_);
    return CheckLaunch("XpayKernel", stream_);
  }

 private:
  double* Of(Vec v, int s) { return vectors_[v].data() + static_cast<size_t>(s) * n_; }
  dim3 Grid(int64_t count) const { return dim3(BlocksFor(count), batch_); }
  BatchArgs Args(const Scalars* scalars = nullptr) const {
    BatchArgs args{};
    args.active = active_;
    if (scalars != nullptr) std::copy(scalars->begin(), scalars->end(), args.scalar);
    return args;
  }
  BatchView View() const {
    return {{row_ptr_.data(), col_idx_.data(), values_.data(), rows_.data()}, nnz_, n_};
  }

  const SweepOrder& order_;
  const cudaStream_t stream_;
  int batch_ = 0;
  uint64_t active_ = 0;
  int32_t n_ = 0;
  int64_t nnz_ = 0;
  DeviceBuffer<int64_t> row_ptr_;
  DeviceBuffer<int32_t> col_idx_;
  DeviceBuffer<double> values_;
  DeviceBuffer<int32_t> rows_;
  DeviceBuffer<double> vectors_[kVectors];
  DeviceBuffer<double> partials_;  // kMaxBatch blocks of partials, then the totals
};

}  // namespace

Status MakeCudaBackend(const Device& device, StreamHandle stream,
                       const std::vector<const CsrMatrix*>& systems, const SweepOrder& order,
                       std::unique_ptr<SorBackend>* backend) {
  if (!order.parallel) {
    return InvalidArgument("ordering: natural ordering is sequential and runs on the CPU only");
  }
  SOLVERD_CUDA_RETURN_IF_ERROR(cudaSetDevice(device.index));
  auto cuda = std::make_unique<CudaBackend>(order, static_cast<cudaStream_t>(stream));
  SOLVERD_RETURN_IF_ERROR(cuda->Init(systems));
  *backend = std::move(cuda);
  return Status::Ok();
}

}  // namespace solverd::sor::internal
