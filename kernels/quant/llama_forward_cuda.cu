// The CUDA backend of the Llama forward pass (llama_forward.h): the
// activations stay on the device for the whole pass, weights are copied
// up as each step needs them, and every kernel runs llama_math.h's
// arithmetic (this file is built without fused multiply-adds), so the
// CPU and CUDA passes agree to the last bit of exp() (llama_math.h).
// The GEMMs are a shared-memory tiled kernel of this file rather than
// cuBLAS, which would neither sum in the CPU's order nor load into the
// server (quant_cuda.cu says why).
#include <cuda_runtime.h>

#include <array>
#include <cmath>
#include <string>

#include "common/cuda_check.h"
#include "common/device_buffer.cuh"
#include "quant/llama_forward.h"
#include "quant/llama_math.h"
#include "quant/quant_backend.h"

namespace solverd::quant::internal {
namespace {

constexpr int kThreads = 256;          // per block of the elementwise kernels
constexpr int kTile = 32;              // tokens and outputs of one GEMM block
constexpr int kTileThreads = 16;       // per side: 16 x 16 threads,
constexpr int kPerThread = kTile / kTileThreads;  // each 2 x 2 outputs
constexpr int kAttentionThreads = 128;

__global__ void EmbedKernel(const float* table, const int32_t* ids, int64_t tokens,
                            int64_t width, float* x) {
  const int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (e >= tokens * width) return;
  x[e] = table[static_cast<int64_t>(ids[e / width]) * width + e % width];
}

__global__ void RmsScaleKernel(const float* x, int64_t tokens, int64_t width, double eps,
                               float* scales) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t < tokens) scales[t] = RmsScale(x + t * width, width, eps);
}

__global__ void ScaleRowsKernel(const float* x, const float* scales, const float* weight,
                                int64_t tokens, int64_t width, float* out) {
  const int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (e < tokens * width) out[e] = x[e] * scales[e / width] * weight[e % width];
}

// y = x W^T (+ bias) in kTile x kTile output tiles. Each output's dot
// product runs over k in order, in lane k % kDotLanes, as LanesDot() does;
// columns past `in` add +0 to their lanes, which changes no sum.
__global__ void LinearKernel(const float* x, int64_t tokens, int64_t in, const float* w,
                             int64_t out, const float* bias, float* y) {
  __shared__ float xs[kTile][kTile + 1], ws[kTile][kTile + 1];
  const int64_t t0 = blockIdx.x * static_cast<int64_t>(kTile);
  const int64_t o0 = blockIdx.y * static_cast<int64_t>(kTile);
  const int tx = threadIdx.x, ty = threadIdx.y, id = ty * kTileThreads + tx;
  float lanes[kPerThread][kPerThread][kDotLanes] = {};
  for (int64_t k0 = 0; k0 < in; k0 += kTile) {
    for (int e = id; e < kTile * kTile; e += kTileThreads * kTileThreads) {
      const int r = e / kTile, c = e % kTile;
      const bool inside = k0 + c < in;
      xs[r][c] = inside && t0 + r < tokens ? x[(t0 + r) * in + k0 + c] : 0.0f;
      ws[r][c] = inside && o0 + r < out ? w[(o0 + r) * in + k0 + c] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTile; ++kk) {
#pragma unroll
      for (int a = 0; a < kPerThread; ++a) {
#pragma unroll
        for (int b = 0; b < kPerThread; ++b) {
          lanes[a][b][kk % kDotLanes] += xs[ty * kPerThread + a][kk] * ws[tx * kPerThread + b][kk];
        }
      }
    }
    __syncthreads();
  }
  for (int a = 0; a < kPerThread; ++a) {
    for (int b = 0; b < kPerThread; ++b) {
      const int64_t t = t0 + ty * kPerThread + a, o = o0 + tx * kPerThread + b;
      if (t < tokens && o < out) y[t * out + o] = LinearOutput(CombineLanes(lanes[a][b]), bias, o);
    }
  }
}

// One thread per (token, head, pair).
__global__ void RopeKernel(float* x, int64_t tokens, int64_t length, int64_t heads,
                           int64_t head_dim, const float* cos, const float* sin) {
  const int64_t half = head_dim / 2;
  const int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (e >= tokens * heads * half) return;
  const int64_t t = e / (heads * half), h = e / half % heads, i = e % half;
  const int64_t angle = t % length * half + i;
  float* row = x + t * heads * head_dim + h * head_dim;
  RotatePair(cos[angle], sin[angle], &row[i], &row[i + half]);
}

// One block per (token, query head): its scores in shared memory, in the
// CPU's order (CausalAttention in llama_forward.cc).
__global__ void AttentionKernel(const float* q, const float* k, const float* v, int64_t length,
                                int64_t heads, int64_t kv_heads, int64_t d, double scale,
                                float* out) {
  extern __shared__ double p[];
  __shared__ double partial[kAttentionThreads];
  __shared__ double total;
  const int64_t t = blockIdx.x, h = blockIdx.y, kv = h / (heads / kv_heads);
  const int64_t first = t - t % length, i = t % length;
  const int64_t q_width = heads * d, kv_width = kv_heads * d;
  const float* qi = q + t * q_width + h * d;
  double largest = -INFINITY;
  for (int64_t j = threadIdx.x; j <= i; j += blockDim.x) {
    p[j] = LanesDot(qi, k + (first + j) * kv_width + kv * d, d) * scale;
    largest = fmax(largest, p[j]);
  }
  partial[threadIdx.x] = largest;
  __syncthreads();
  for (int n = 0; n < kAttentionThreads; ++n) largest = fmax(largest, partial[n]);
  for (int64_t j = threadIdx.x; j <= i; j += blockDim.x) p[j] = exp(p[j] - largest);
  __syncthreads();
  if (threadIdx.x == 0) {
    double sum = 0;
    for (int64_t j = 0; j <= i; ++j) sum += p[j];
    total = sum;
  }
  __syncthreads();
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
    float o = 0;
    for (int64_t j = 0; j <= i; ++j) {
      o += static_cast<float>(p[j] / total) * v[(first + j) * kv_width + kv * d + c];
    }
    out[t * q_width + h * d + c] = o;
  }
}

__global__ void SwiGluKernel(const float* up, int64_t n, float* gate) {
  const int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (e < n) gate[e] = SiluTimes(gate[e], up[e]);
}

__global__ void AddKernel(const float* y, int64_t n, float* x) {
  const int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (e < n) x[e] += y[e];
}

__global__ void DifferenceKernel(const float* a, const float* b, int64_t n, float* out) {
  const int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (e < n) out[e] = a[e] - b[e];
}

class CudaLlamaForward final : public LlamaForward {
 public:
  CudaLlamaForward(const LlamaShape& shape, const TokenRuns& runs, cudaStream_t stream)
      : shape_(shape), runs_(runs), tokens_(runs.tokens()), stream_(stream) {}

  // The activations, the norm's scales and RoPE's table, or
  // RESOURCE_EXHAUSTED naming what they need.
  Status Allocate() {
    int64_t bytes = tokens_ * 4;
    for (int s = 0; s < static_cast<int>(Slot::kCount); ++s) {
      bytes += tokens_ * SlotWidth(shape_, static_cast<Slot>(s)) * 4;
    }
    if (const Status status = AllocateSlots(); !status.ok()) {
      return Status(status.code(), "the activations of " + std::to_string(tokens_) +
                                       " calibration tokens need " + std::to_string(bytes >> 20) +
                                       " MiB of GPU memory (send fewer or shorter sequences): " +
                                       status.message());
    }
    std::vector<float> cos, sin;
    RopeTable(shape_, runs_.length, &cos, &sin);
    SOLVERD_RETURN_IF_ERROR(cos_.Upload(cos.data(), cos.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(sin_.Upload(sin.data(), sin.size(), stream_));
    return Wait();  // the tables' host copies go out of scope
  }

  Status Embed(const std::vector<float>& table, const std::vector<int32_t>& ids) override {
    DeviceBuffer<float> table_d;
    DeviceBuffer<int32_t> ids_d;
    SOLVERD_RETURN_IF_ERROR(table_d.Upload(table.data(), table.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(ids_d.Upload(ids.data(), ids.size(), stream_));
    const int64_t n = tokens_ * shape_.hidden;
    EmbedKernel<<<BlocksFor(n, kThreads), kThreads, 0, stream_>>>(
        table_d.data(), ids_d.data(), tokens_, shape_.hidden, At(Slot::kResidual));
    SOLVERD_RETURN_IF_ERROR(::solverd::internal::CheckLaunch("EmbedKernel", stream_));
    return Wait();  // before the uploads' buffers go
  }

  Status Norm(const std::vector<float>& weight) override {
    DeviceBuffer<float> weight_d;
    SOLVERD_RETURN_IF_ERROR(weight_d.Upload(weight.data(), weight.size(), stream_));
    RmsScaleKernel<<<BlocksFor(tokens_, kThreads), kThreads, 0, stream_>>>(
        At(Slot::kResidual), tokens_, shape_.hidden, shape_.rms_eps, scales_.data());
    SOLVERD_RETURN_IF_ERROR(::solverd::internal::CheckLaunch("RmsScaleKernel", stream_));
    const int64_t n = tokens_ * shape_.hidden;
    ScaleRowsKernel<<<BlocksFor(n, kThreads), kThreads, 0, stream_>>>(
        At(Slot::kResidual), scales_.data(), weight_d.data(), tokens_, shape_.hidden,
        At(Slot::kNormed));
    SOLVERD_RETURN_IF_ERROR(::solverd::internal::CheckLaunch("ScaleRowsKernel", stream_));
    return Wait();
  }

  Status Linear(Slot in, const std::vector<float>& weights, const std::vector<float>* bias,
                Slot out) override {
    DeviceBuffer<float> w, b;
    SOLVERD_RETURN_IF_ERROR(w.Upload(weights.data(), weights.size(), stream_));
    if (bias != nullptr) SOLVERD_RETURN_IF_ERROR(b.Upload(bias->data(), bias->size(), stream_));
    const dim3 grid(BlocksFor(tokens_, kTile), BlocksFor(Width(out), kTile));
    LinearKernel<<<grid, dim3(kTileThreads, kTileThreads), 0, stream_>>>(
        At(in), tokens_, Width(in), w.data(), Width(out), bias != nullptr ? b.data() : nullptr,
        At(out));
    SOLVERD_RETURN_IF_ERROR(::solverd::internal::CheckLaunch("LinearKernel", stream_));
    return Wait();
  }

  Status Attend() override {
    SOLVERD_RETURN_IF_ERROR(Rope(Slot::kQuery, shape_.heads));
    SOLVERD_RETURN_IF_ERROR(Rope(Slot::kKey, shape_.kv_heads));
    const size_t scores = static_cast<size_t>(runs_.length) * sizeof(double);
    const Status room = ::solverd::internal::CudaStatus(
        cudaFuncSetAttribute(AttentionKernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(scores)),
        "cudaFuncSetAttribute");
    if (!room.ok()) {
      return InvalidArgument("calibration sequences of " + std::to_string(runs_.length) +
                             " tokens do not fit the attention kernel's shared memory: " +
                             room.message());
    }
    const dim3 grid(static_cast<unsigned>(tokens_), static_cast<unsigned>(shape_.heads));
    AttentionKernel<<<grid, kAttentionThreads, scores, stream_>>>(
        At(Slot::kQuery), At(Slot::kKey), At(Slot::kValue), runs_.length, shape_.heads,
        shape_.kv_heads, shape_.head_dim, 1.0 / std::sqrt(static_cast<double>(shape_.head_dim)),
        At(Slot::kMixed));
    return ::solverd::internal::CheckLaunch("AttentionKernel", stream_);
  }

  Status Gate() override {
    const int64_t n = tokens_ * shape_.intermediate;
    SwiGluKernel<<<BlocksFor(n, kThreads), kThreads, 0, stream_>>>(At(Slot::kUp), n,
                                                                    At(Slot::kGate));
    return ::solverd::internal::CheckLaunch("SwiGluKernel", stream_);
  }

  Status AddToResidual() override {
    const int64_t n = tokens_ * shape_.hidden;
    AddKernel<<<BlocksFor(n, kThreads), kThreads, 0, stream_>>>(At(Slot::kNormed), n,
                                                                 At(Slot::kResidual));
    return ::solverd::internal::CheckLaunch("AddKernel", stream_);
  }

  Status SumOfOuterProducts(Slot in, std::vector<double>* h) override {
    return DeviceSumOfOuterProducts(At(in), tokens_, Width(in), 1.0, stream_, h);
  }

  Status SumOfDriftProducts(Slot in, LlamaForward* reference,
                            std::vector<double>* drift) override {
    auto* other = dynamic_cast<CudaLlamaForward*>(reference);
    if (other == nullptr) return Internal("SumOfDriftProducts: the reference is not a CUDA pass");
    const int64_t n = tokens_ * Width(in);
    DeviceBuffer<float> apart;
    SOLVERD_RETURN_IF_ERROR(apart.Allocate(static_cast<size_t>(n)));
    DifferenceKernel<<<BlocksFor(n, kThreads), kThreads, 0, stream_>>>(other->At(in), At(in), n,
                                                                       apart.data());
    SOLVERD_RETURN_IF_ERROR(::solverd::internal::CheckLaunch("DifferenceKernel", stream_));
    return DeviceSumOfCrossProducts(At(in), apart.data(), tokens_, Width(in), stream_, drift);
  }

  Status Read(Slot slot, std::vector<float>* out) override {
    const DeviceBuffer<float>& buffer = slots_[static_cast<int>(slot)];
    out->resize(buffer.size());
    return buffer.Download(out->data(), stream_);
  }

 private:
  float* At(Slot slot) { return slots_[static_cast<int>(slot)].data(); }
  int64_t Width(Slot slot) const { return SlotWidth(shape_, slot); }
  Status Wait() {
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return Status::Ok();
  }
  Status AllocateSlots() {
    SOLVERD_RETURN_IF_ERROR(scales_.Allocate(static_cast<size_t>(tokens_)));
    for (int s = 0; s < static_cast<int>(Slot::kCount); ++s) {
      SOLVERD_RETURN_IF_ERROR(
          slots_[s].Allocate(static_cast<size_t>(tokens_ * Width(static_cast<Slot>(s)))));
    }
    return Status::Ok();
  }
  Status Rope(Slot slot, int64_t heads) {
    const int64_t n = tokens_ * heads * (shape_.head_dim / 2);
    RopeKernel<<<BlocksFor(n, kThreads), kThreads, 0, stream_>>>(
        At(slot), tokens_, runs_.length, heads, shape_.head_dim, cos_.data(), sin_.data());
    return ::solverd::internal::CheckLaunch("RopeKernel", stream_);
  }

  const LlamaShape shape_;
  const TokenRuns runs_;
  const int64_t tokens_;
  const cudaStream_t stream_;
  std::array<DeviceBuffer<float>, static_cast<int>(Slot::kCount)> slots_;
  DeviceBuffer<float> scales_, cos_, sin_;
};

}  // namespace

Status MakeCudaLlamaForward(const Device& device, StreamHandle stream, const LlamaShape& shape,
                            const TokenRuns& runs, std::unique_ptr<LlamaForward>* out) {
  SOLVERD_CUDA_RETURN_IF_ERROR(cudaSetDevice(device.index));
  auto forward =
      std::make_unique<CudaLlamaForward>(shape, runs, static_cast<cudaStream_t>(stream));
  SOLVERD_RETURN_IF_ERROR(forward->Allocate());
  *out = std::move(forward);
  return Status::Ok();
}

}  // namespace solverd::quant::internal
