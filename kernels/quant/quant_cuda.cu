// The quant family's CUDA backend: round to nearest, block-wise codes and
// GPTQ. GPTQ's Hessian is one cuBLAS GEMM over the calibration inputs, the
// factor U of H^-1 comes from cuSOLVER (Cholesky, inverse, Cholesky), and
// the rows are rounded in parallel, one block each. Damping, act-order and
// dead columns are O(cols^2) host steps between them.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

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

int64_t BlocksFor(int64_t n) { return (n + kQuantThreads - 1) / kQuantThreads; }

Status CublasStatus(cublasStatus_t s, const char* what) {
  return s == CUBLAS_STATUS_SUCCESS ? Status::Ok()
                                    : Internal(std::string(what) + ": cuBLAS error " +
                                               std::to_string(static_cast<int>(s)));
}

// cuSOLVER's info > 0: the matrix is not positive definite.
Status SolverStatus(cusolverStatus_t s, const DeviceBuffer<int>& info, cudaStream_t stream,
                    const char* what) {
  if (s != CUSOLVER_STATUS_SUCCESS) {
    return Internal(std::string(what) + ": cuSOLVER error " + std::to_string(static_cast<int>(s)));
  }
  int host_info = 0;
  SOLVERD_RETURN_IF_ERROR(info.Download(&host_info, stream));
  if (host_info > 0) {
    return InvalidArgument("the damped Hessian of the calibration inputs is not positive "
                           "definite (raise damp)");
  }
  if (host_info < 0) return Internal(std::string(what) + ": bad argument " + std::to_string(-host_info));
  return Status::Ok();
}

template <typename T>
Status DownloadInto(const DeviceBuffer<T>& buffer, std::vector<T>* out, cudaStream_t stream) {
  out->resize(buffer.size());
  return buffer.Download(out->data(), stream);
}

// RAII cuBLAS and cuSOLVER handles bound to a stream.
struct Handles {
  cublasHandle_t blas = nullptr;
  cusolverDnHandle_t solver = nullptr;
  ~Handles() {
    if (blas != nullptr) cublasDestroy(blas);
    if (solver != nullptr) cusolverDnDestroy(solver);
  }
  Status Create(cudaStream_t stream) {
    SOLVERD_RETURN_IF_ERROR(CublasStatus(cublasCreate(&blas), "cublasCreate"));
    SOLVERD_RETURN_IF_ERROR(CublasStatus(cublasSetStream(blas, stream), "cublasSetStream"));
    if (cusolverDnCreate(&solver) != CUSOLVER_STATUS_SUCCESS ||
        cusolverDnSetStream(solver, stream) != CUSOLVER_STATUS_SUCCESS) {
      return Internal("cusolverDnCreate failed");
    }
    return Status::Ok();
  }
};

// H = 2 X^T X / tokens on the device, returned to the host.
Status DeviceHessian(Handles& handles, const Layer& layer, cudaStream_t stream,
                     std::vector<double>* h) {
  const int64_t tokens = layer.tokens, cols = layer.cols;
  DeviceBuffer<float> x32;
  DeviceBuffer<double> x, hd;
  SOLVERD_RETURN_IF_ERROR(x32.Upload(layer.inputs.data(), layer.inputs.size(), stream));
  SOLVERD_RETURN_IF_ERROR(x.Allocate(layer.inputs.size()));
  SOLVERD_RETURN_IF_ERROR(hd.Allocate(static_cast<size_t>(cols * cols)));
  WidenKernel<<<BlocksFor(tokens * cols), kQuantThreads, 0, stream>>>(x32.data(), tokens * cols,
                                                                       x.data());
  SOLVERD_RETURN_IF_ERROR(::solverd::internal::CheckLaunch("WidenKernel", stream));
  // Row-major X (tokens x cols) is column-major X^T (cols x tokens).
  const double alpha = 2.0 / static_cast<double>(tokens), beta = 0;
  SOLVERD_RETURN_IF_ERROR(CublasStatus(
      cublasDgemm(handles.blas, CUBLAS_OP_N, CUBLAS_OP_T, cols, cols, tokens, &alpha, x.data(),
                  cols, x.data(), cols, &beta, hd.data(), cols),
      "cublasDgemm"));
  return DownloadInto(hd, h, stream);
}

// Replaces the damped (permuted) H by U of H^-1 as floats on the device.
Status DeviceInverseFactor(Handles& handles, const std::vector<double>& h, int64_t cols,
                           cudaStream_t stream, DeviceBuffer<float>* u) {
  const int n = static_cast<int>(cols);
  DeviceBuffer<double> a, work;
  DeviceBuffer<int> info;
  SOLVERD_RETURN_IF_ERROR(a.Upload(h.data(), h.size(), stream));
  SOLVERD_RETURN_IF_ERROR(info.Allocate(1));
  int lwork = 0, lwork_inverse = 0;
  const cublasFillMode_t lower = CUBLAS_FILL_MODE_LOWER;
  if (cusolverDnDpotrf_bufferSize(handles.solver, lower, n, a.data(), n, &lwork) !=
          CUSOLVER_STATUS_SUCCESS ||
      cusolverDnDpotri_bufferSize(handles.solver, lower, n, a.data(), n, &lwork_inverse) !=
          CUSOLVER_STATUS_SUCCESS) {
    return Internal("cuSOLVER workspace query failed");
  }
  SOLVERD_RETURN_IF_ERROR(work.Allocate(static_cast<size_t>(std::max({lwork, lwork_inverse, 1}))));
  SOLVERD_RETURN_IF_ERROR(SolverStatus(
      cusolverDnDpotrf(handles.solver, lower, n, a.data(), n, work.data(), lwork, info.data()),
      info, stream, "cusolverDnDpotrf"));
  SOLVERD_RETURN_IF_ERROR(SolverStatus(
      cusolverDnDpotri(handles.solver, lower, n, a.data(), n, work.data(), lwork_inverse,
                       info.data()),
      info, stream, "cusolverDnDpotri"));
  // The lower factor L of H^-1, column-major: read row-major it is U = L^T
  // in the upper triangle, which is all the row kernel reads.
  SOLVERD_RETURN_IF_ERROR(SolverStatus(
      cusolverDnDpotrf(handles.solver, lower, n, a.data(), n, work.data(), lwork, info.data()),
      info, stream, "cusolverDnDpotrf"));
  SOLVERD_RETURN_IF_ERROR(u->Allocate(h.size()));
  NarrowKernel<<<BlocksFor(cols * cols), kQuantThreads, 0, stream>>>(a.data(), cols * cols,
                                                                     u->data());
  return ::solverd::internal::CheckLaunch("NarrowKernel", stream);
}

}  // namespace

Status RtnCuda(const Device& device, StreamHandle stream_handle, const Layer& layer,
               const Options& options, QuantizedLayer* out) {
  SOLVERD_CUDA_RETURN_IF_ERROR(cudaSetDevice(device.index));
  auto stream = static_cast<cudaStream_t>(stream_handle);
  const int64_t rows = layer.rows, cols = layer.cols;
  const int64_t group = GroupColumns(options, cols);
  ShapeGridLayer(rows, cols, options.bits, group, out);
  DeviceBuffer<float> w, scales, zeros;
  DeviceBuffer<uint8_t> codes;
  SOLVERD_RETURN_IF_ERROR(w.Upload(layer.weights.data(), layer.weights.size(), stream));
  SOLVERD_RETURN_IF_ERROR(scales.Allocate(out->scales.size()));
  SOLVERD_RETURN_IF_ERROR(zeros.Allocate(out->zeros.size()));
  SOLVERD_RETURN_IF_ERROR(codes.Allocate(out->codes.size()));
  const int64_t cells = static_cast<int64_t>(out->scales.size());
  RtnKernel<<<BlocksFor(cells), kQuantThreads, 0, stream>>>(
      w.data(), rows, cols, group, options.bits, options.symmetric, options.clip_search,
      scales.data(), zeros.data(), codes.data());
  SOLVERD_RETURN_IF_ERROR(::solverd::internal::CheckLaunch("RtnKernel", stream));
  SOLVERD_RETURN_IF_ERROR(DownloadInto(scales, &out->scales, stream));
  SOLVERD_RETURN_IF_ERROR(DownloadInto(zeros, &out->zeros, stream));
  SOLVERD_RETURN_IF_ERROR(DownloadInto(codes, &out->codes, stream));
  DequantizeGrid(rows, cols, out);
  return Status::Ok();
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
  AbsmaxKernel<<<BlocksFor(absmax.size()), kQuantThreads, 0, stream>>>(w.data(), n, block,
                                                                        absmax.data());
  SOLVERD_RETURN_IF_ERROR(::solverd::internal::CheckLaunch("AbsmaxKernel", stream));
  SOLVERD_RETURN_IF_ERROR(DownloadInto(absmax, &out->absmax, stream));
  if (options.double_quant) {
    DoubleQuantize(&out->absmax, out);
    SOLVERD_RETURN_IF_ERROR(absmax.Upload(out->absmax.data(), out->absmax.size(), stream));
  }
  SOLVERD_RETURN_IF_ERROR(book.Upload(out->codebook.data(), out->codebook.size(), stream));
  SOLVERD_RETURN_IF_ERROR(codes.Allocate(static_cast<size_t>(n)));
  BlockwiseCodeKernel<<<BlocksFor(n), kQuantThreads, 0, stream>>>(
      w.data(), n, block, absmax.data(), book.data(), static_cast<int>(out->codebook.size()),
      codes.data());
  SOLVERD_RETURN_IF_ERROR(::solverd::internal::CheckLaunch("BlockwiseCodeKernel", stream));
  SOLVERD_RETURN_IF_ERROR(DownloadInto(codes, &out->codes, stream));
  out->dequantized.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    out->dequantized[i] = out->absmax[i / block] * out->codebook[out->codes[i]];
  }
  return Status::Ok();
}

Status GptqCuda(const Device& device, StreamHandle stream_handle, const Layer& layer,
                const Options& options, const CancelToken* cancel, QuantizedLayer* out) {
  SOLVERD_CUDA_RETURN_IF_ERROR(cudaSetDevice(device.index));
  auto stream = static_cast<cudaStream_t>(stream_handle);
  const int64_t rows = layer.rows, cols = layer.cols;
  Handles handles;
  SOLVERD_RETURN_IF_ERROR(handles.Create(stream));
  std::vector<double> h;
  SOLVERD_RETURN_IF_ERROR(DeviceHessian(handles, layer, stream, &h));
  GptqSetup setup;
  SOLVERD_RETURN_IF_ERROR(PrepareGptq(layer, options, std::move(h), &setup, out));
  SOLVERD_RETURN_IF_ERROR(CheckCancel(cancel));
  DeviceBuffer<float> u;
  SOLVERD_RETURN_IF_ERROR(DeviceInverseFactor(handles, setup.h, cols, stream, &u));

  DeviceBuffer<float> w, scales, zeros;
  DeviceBuffer<int64_t> order;
  DeviceBuffer<uint8_t> codes;
  SOLVERD_RETURN_IF_ERROR(w.Upload(setup.work.data(), setup.work.size(), stream));
  SOLVERD_RETURN_IF_ERROR(order.Upload(setup.order.data(), setup.order.size(), stream));
  SOLVERD_RETURN_IF_ERROR(scales.Upload(out->scales.data(), out->scales.size(), stream));
  SOLVERD_RETURN_IF_ERROR(zeros.Upload(out->zeros.data(), out->zeros.size(), stream));
  SOLVERD_RETURN_IF_ERROR(codes.Allocate(out->codes.size()));
  GptqRowKernel<<<static_cast<unsigned>(rows), kQuantThreads, 0, stream>>>(
      w.data(), cols, u.data(), order.data(), out->group_size, options.bits, options.symmetric,
      options.clip_search, options.act_order, scales.data(), zeros.data(), codes.data());
  SOLVERD_RETURN_IF_ERROR(::solverd::internal::CheckLaunch("GptqRowKernel", stream));
  SOLVERD_RETURN_IF_ERROR(DownloadInto(scales, &out->scales, stream));
  SOLVERD_RETURN_IF_ERROR(DownloadInto(zeros, &out->zeros, stream));
  SOLVERD_RETURN_IF_ERROR(DownloadInto(codes, &out->codes, stream));
  DequantizeGrid(rows, cols, out);
  return Status::Ok();
}

}  // namespace solverd::quant::internal
