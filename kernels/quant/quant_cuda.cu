// The quant family's CUDA backend: round to nearest, HQQ, block-wise codes
// and GPTQ. GPTQ's Hessian is built on the device (the O(tokens * cols^2)
// part), the factor U of H^-1 on the host by the CPU backend's own code,
// and the rows are rounded in parallel, one block each, with the CPU's
// arithmetic: so CPU and CUDA give the same codes. (cuBLAS and cuSOLVER are
// not used: loading libcublasLt into the server breaks its metrics
// endpoint's start, and their sums would not match the CPU's.)
#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "common/cuda_check.h"
#include "common/device_buffer.cuh"
#include "quant/blockwise.h"
#include "quant/gptq_hessian.h"
#include "quant/quant_backend.h"
#include "quant/quant_kernels.cuh"

namespace solverd::quant::internal {
namespace {

template <typename T>
Status DownloadInto(const DeviceBuffer<T>& buffer, std::vector<T>* out, cudaStream_t stream) {
  out->resize(buffer.size());
  return buffer.Download(out->data(), stream);
}

// A cols x cols matrix of sums that `launch` (given the grid and the
// device matrix) has a kernel fill, one thread per entry and a block row
// per row, brought to the host.
template <typename Launch>
Status MatrixOfSums(int64_t cols, cudaStream_t stream, const char* kernel,
                    std::vector<double>* out, const Launch& launch) {
  DeviceBuffer<double> sums;
  SOLVERD_RETURN_IF_ERROR(sums.Allocate(static_cast<size_t>(cols * cols)));
  launch(dim3(BlocksFor(cols, kQuantThreads), static_cast<unsigned>(cols)), sums.data());
  SOLVERD_RETURN_IF_ERROR(::solverd::internal::CheckLaunch(kernel, stream));
  return DownloadInto(sums, out, stream);
}

}  // namespace

Status DeviceSumOfOuterProducts(const float* device_inputs, int64_t tokens, int64_t cols,
                                double scale, StreamHandle stream_handle,
                                std::vector<double>* h) {
  auto stream = static_cast<cudaStream_t>(stream_handle);
  const auto launch = [&](dim3 grid, double* sums) {
    HessianKernel<<<grid, kQuantThreads, 0, stream>>>(device_inputs, tokens, cols, scale, sums);
  };
  SOLVERD_RETURN_IF_ERROR(MatrixOfSums(cols, stream, "HessianKernel", h, launch));
  MirrorLower(cols, h);  // the kernel fills the lower triangle
  return Status::Ok();
}

Status DeviceSumOfCrossProducts(const float* device_x, const float* device_y, int64_t tokens,
                                int64_t cols, StreamHandle stream_handle,
                                std::vector<double>* out) {
  auto stream = static_cast<cudaStream_t>(stream_handle);
  return MatrixOfSums(cols, stream, "CrossProductKernel", out, [&](dim3 grid, double* sums) {
    CrossProductKernel<<<grid, kQuantThreads, 0, stream>>>(device_x, device_y, tokens, cols,
                                                           sums);
  });
}

namespace {

// H = 2 X^T X / tokens on the device, as the CPU computes it.
Status DeviceHessian(const Layer& layer, cudaStream_t stream, std::vector<double>* h) {
  DeviceBuffer<float> x;
  SOLVERD_RETURN_IF_ERROR(x.Upload(layer.inputs.data(), layer.inputs.size(), stream));
  return DeviceSumOfOuterProducts(x.data(), layer.tokens, layer.cols,
                                  HessianScale(layer.tokens), stream, h);
}

// A grid layer's per-group and per-super-block values on the device, as
// ShapeGridLayer() sized them on the host.
struct GridBuffers {
  DeviceBuffer<float> scales, zeros, offsets, super_scales, super_mins;
  DeviceBuffer<uint8_t> codes;

  // Copies `shaped`'s values up (static grids) and makes room for codes.
  Status Upload(const QuantizedLayer& shaped, cudaStream_t stream) {
    SOLVERD_RETURN_IF_ERROR(scales.Upload(shaped.scales.data(), shaped.scales.size(), stream));
    SOLVERD_RETURN_IF_ERROR(zeros.Upload(shaped.zeros.data(), shaped.zeros.size(), stream));
    if (!shaped.offsets.empty()) {  // K-quant grids
      SOLVERD_RETURN_IF_ERROR(
          offsets.Upload(shaped.offsets.data(), shaped.offsets.size(), stream));
      SOLVERD_RETURN_IF_ERROR(super_scales.Upload(shaped.super_scales.data(),
                                                  shaped.super_scales.size(), stream));
      SOLVERD_RETURN_IF_ERROR(
          super_mins.Upload(shaped.super_mins.data(), shaped.super_mins.size(), stream));
    }
    return codes.Allocate(shaped.codes.size());
  }
  DeviceGrids View() {
    return {scales.data(), zeros.data(), offsets.data(), super_scales.data(), super_mins.data(),
            codes.data()};
  }
  // Brings the values and codes back and dequantizes the layer on the
  // host (codes cross the bus, not four times their bytes in floats).
  Status Download(int64_t rows, int64_t cols, int threads, cudaStream_t stream,
                  QuantizedLayer* out) {
    SOLVERD_RETURN_IF_ERROR(DownloadInto(scales, &out->scales, stream));
    SOLVERD_RETURN_IF_ERROR(DownloadInto(zeros, &out->zeros, stream));
    if (offsets.size() > 0) {
      SOLVERD_RETURN_IF_ERROR(DownloadInto(offsets, &out->offsets, stream));
      SOLVERD_RETURN_IF_ERROR(DownloadInto(super_scales, &out->super_scales, stream));
      SOLVERD_RETURN_IF_ERROR(DownloadInto(super_mins, &out->super_mins, stream));
    }
    SOLVERD_RETURN_IF_ERROR(DownloadInto(codes, &out->codes, stream));
    DequantizeGrid(rows, cols, threads, out);
    return Status::Ok();
  }
};

// Threads per block of StagedGroupKernel for this layer, a multiple of 32
// whose staging fits the default 48 KiB of shared memory; 0 where the layer
// has a partial group or groups too wide to stage a warp's worth.
int StagedThreads(int64_t cols, int64_t group) {
  constexpr int64_t kSharedBytes = 48 * 1024, kWarp = 32;
  if (cols % group != 0) return 0;
  const int64_t fit = kSharedBytes / StagedBytesPerThread(group) / kWarp * kWarp;
  return static_cast<int>(std::min<int64_t>(fit, kQuantThreads));
}

template <typename GroupQuantizer>
Status QuantizeGroupsCuda(const Device& device, StreamHandle stream_handle, const Layer& layer,
                          const Options& options, GroupQuantizer quantize, QuantizedLayer* out) {
  SOLVERD_CUDA_RETURN_IF_ERROR(cudaSetDevice(device.index));
  auto stream = static_cast<cudaStream_t>(stream_handle);
  const int64_t rows = layer.rows, cols = layer.cols;
  ShapeGridLayer(rows, cols, options, out);
  const int64_t group = out->group_size;
  DeviceBuffer<float> w;
  GridBuffers grids;
  SOLVERD_RETURN_IF_ERROR(w.Upload(layer.weights.data(), layer.weights.size(), stream));
  SOLVERD_RETURN_IF_ERROR(grids.Upload(*out, stream));
  const DeviceGrids view = grids.View();
  const int64_t cells = static_cast<int64_t>(out->scales.size());
  const int staged_threads = StagedThreads(cols, group);
  if (staged_threads > 0) {
    const size_t shared = static_cast<size_t>(staged_threads * StagedBytesPerThread(group));
    StagedGroupKernel<<<BlocksFor(cells, staged_threads), staged_threads, shared, stream>>>(
        w.data(), cells, static_cast<int>(group), quantize, view.scales, view.zeros,
        view.codes);
    SOLVERD_RETURN_IF_ERROR(::solverd::internal::CheckLaunch("StagedGroupKernel", stream));
  } else {
    GroupKernel<<<BlocksFor(cells, kQuantThreads), kQuantThreads, 0, stream>>>(
        w.data(), rows, cols, group, quantize, view.scales, view.zeros, view.codes);
    SOLVERD_RETURN_IF_ERROR(::solverd::internal::CheckLaunch("GroupKernel", stream));
  }
  return grids.Download(rows, cols, options.threads, stream, out);
}

// Round to nearest on K-quant grids, one thread per super-block.
Status QuantizeKSuperBlocksCuda(const Device& device, StreamHandle stream_handle,
                                const Layer& layer, const Options& options,
                                QuantizedLayer* out) {
  SOLVERD_CUDA_RETURN_IF_ERROR(cudaSetDevice(device.index));
  auto stream = static_cast<cudaStream_t>(stream_handle);
  ShapeGridLayer(layer.rows, layer.cols, options, out);
  DeviceBuffer<float> w;
  GridBuffers grids;
  SOLVERD_RETURN_IF_ERROR(w.Upload(layer.weights.data(), layer.weights.size(), stream));
  SOLVERD_RETURN_IF_ERROR(grids.Upload(*out, stream));
  const int64_t supers = static_cast<int64_t>(out->super_scales.size());
  KSuperBlockKernel<<<BlocksFor(supers, kQuantThreads), kQuantThreads, 0, stream>>>(
      w.data(), supers, options.bits, grids.View());
  SOLVERD_RETURN_IF_ERROR(::solverd::internal::CheckLaunch("KSuperBlockKernel", stream));
  return grids.Download(layer.rows, layer.cols, options.threads, stream, out);
}

}  // namespace

Status RtnCuda(const Device& device, StreamHandle stream, const Layer& layer,
               const Options& options, QuantizedLayer* out) {
  if (options.k_quant) return QuantizeKSuperBlocksCuda(device, stream, layer, options, out);
  return QuantizeGroupsCuda(device, stream, layer, options, RtnGroupFor(options), out);
}

Status HqqCuda(const Device& device, StreamHandle stream, const Layer& layer,
               const Options& options, QuantizedLayer* out) {
  return QuantizeGroupsCuda(device, stream, layer, options, HqqGroupFor(options), out);
}

Status BlockwiseCuda(const Device& device, StreamHandle stream_handle, const Layer& layer,
                     const Options& options, QuantizedLayer* out) {
  SOLVERD_CUDA_RETURN_IF_ERROR(cudaSetDevice(device.index));
  auto stream = static_cast<cudaStream_t>(stream_handle);
  const int64_t n = layer.rows * layer.cols, block = options.group_size;
  out->bits = EffectiveBits(options);
  out->group_size = block;
  out->codebook = CodebookFor(options.method);
  DeviceBuffer<float> w, absmax, book;
  DeviceBuffer<uint8_t> codes;
  SOLVERD_RETURN_IF_ERROR(w.Upload(layer.weights.data(), layer.weights.size(), stream));
  SOLVERD_RETURN_IF_ERROR(absmax.Allocate(static_cast<size_t>((n + block - 1) / block)));
  AbsmaxKernel<<<BlocksFor(absmax.size(), kQuantThreads), kQuantThreads, 0, stream>>>(
      w.data(), n, block, absmax.data());
  SOLVERD_RETURN_IF_ERROR(::solverd::internal::CheckLaunch("AbsmaxKernel", stream));
  SOLVERD_RETURN_IF_ERROR(DownloadInto(absmax, &out->absmax, stream));
  if (options.double_quant) {
    DoubleQuantize(&out->absmax, out);
    SOLVERD_RETURN_IF_ERROR(absmax.Upload(out->absmax.data(), out->absmax.size(), stream));
  }
  SOLVERD_RETURN_IF_ERROR(book.Upload(out->codebook.data(), out->codebook.size(), stream));
  SOLVERD_RETURN_IF_ERROR(codes.Allocate(static_cast<size_t>(n)));
  BlockwiseCodeKernel<<<BlocksFor(n, kQuantThreads), kQuantThreads, 0, stream>>>(
      w.data(), n, block, absmax.data(), book.data(), static_cast<int>(out->codebook.size()),
      codes.data());
  SOLVERD_RETURN_IF_ERROR(::solverd::internal::CheckLaunch("BlockwiseCodeKernel", stream));
  SOLVERD_RETURN_IF_ERROR(DownloadInto(codes, &out->codes, stream));
  DequantizeBlockwise(out);
  return Status::Ok();
}

Status GptqCuda(const Device& device, StreamHandle stream_handle, const Layer& layer,
                const Options& options, const CancelToken* cancel, QuantizedLayer* out,
                std::vector<double>* hessian) {
  SOLVERD_CUDA_RETURN_IF_ERROR(cudaSetDevice(device.index));
  auto stream = static_cast<cudaStream_t>(stream_handle);
  const int64_t rows = layer.rows, cols = layer.cols;
  std::vector<double> h;
  if (layer.hessian.empty()) {
    SOLVERD_RETURN_IF_ERROR(DeviceHessian(layer, stream, &h));
  } else {  // the file's: scaled as the CPU scales it
    h = ScaledHessian(layer.hessian, layer.hessian_tokens);
  }
  if (hessian != nullptr) *hessian = h;
  GptqSetup setup;
  SOLVERD_RETURN_IF_ERROR(PrepareGptq(layer, options, std::move(h), &setup, out));
  SOLVERD_RETURN_IF_ERROR(CheckCancel(cancel));
  SOLVERD_RETURN_IF_ERROR(InverseCholeskyUpper(cols, options.threads, &setup.h));
  const std::vector<float> u_host(setup.h.begin(), setup.h.end());
  DeviceBuffer<float> u;
  SOLVERD_RETURN_IF_ERROR(u.Upload(u_host.data(), u_host.size(), stream));

  DeviceBuffer<float> w;
  DeviceBuffer<int64_t> order;
  GridBuffers grids;
  SOLVERD_RETURN_IF_ERROR(w.Upload(setup.work.data(), setup.work.size(), stream));
  SOLVERD_RETURN_IF_ERROR(order.Upload(setup.order.data(), setup.order.size(), stream));
  SOLVERD_RETURN_IF_ERROR(grids.Upload(*out, stream));
  GptqRowKernel<<<static_cast<unsigned>(rows), kQuantThreads, 0, stream>>>(
      w.data(), cols, u.data(), order.data(), out->group_size, options.bits, options.symmetric,
      options.clip_search, options.k_quant, options.act_order, grids.View());
  SOLVERD_RETURN_IF_ERROR(::solverd::internal::CheckLaunch("GptqRowKernel", stream));
  return grids.Download(rows, cols, options.threads, stream, out);
}

}  // namespace solverd::quant::internal
