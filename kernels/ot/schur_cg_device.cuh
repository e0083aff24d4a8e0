// DeviceSchurCg: CudaOtBackend::SolveSchur's conjugate gradient, with every
// vector and scalar on the device: the host queues kCgStepsPerCheck
// iterations at a time and then reads whether the solve is done (kernels
// after that return at once), so a solve of k steps waits on the device
// about k / kCgStepsPerCheck times, not 2k. The launches of each step are
// schur_cg_kernels.cuh's; the buffers are kept from one Newton step to the
// next. Included by ot_cuda.cu alone. Internal.
// Not thread-safe: a backend's solve owns one, and queues on one stream.
#ifndef SOLVERD_KERNELS_OT_SCHUR_CG_DEVICE_CUH_
#define SOLVERD_KERNELS_OT_SCHUR_CG_DEVICE_CUH_

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "common/cuda_check.h"
#include "common/device_buffer.cuh"
#include "ot/ot_backend.h"
#include "ot/schur_cg_kernels.cuh"

namespace solverd::ot::internal {
namespace {

// The backend's sparse plan Ps on the device, as COO.
struct DeviceSparsePlan {
  const int* rows = nullptr;
  const int* cols = nullptr;
  const double* vals = nullptr;
  long nnz = 0;
};

class DeviceSchurCg {
 public:
  // Solves `system` (SchurSystem) for the n x m plan `plan` on `stream`.
  Status Solve(const SchurSystem& system, const DeviceSparsePlan& plan, long n, long m,
               cudaStream_t stream, std::vector<double>* dy, int64_t* iterations) {
    plan_ = plan;
    n_ = n;
    m_ = m;
    stream_ = stream;
    SOLVERD_RETURN_IF_ERROR(Upload(system));
    CgScalars* s = scalars_.data();
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(s, 0, sizeof(CgScalars), stream_));
    SOLVERD_RETURN_IF_ERROR(ZeroCoarseResidual());
    CgStartKernel<<<ColumnBlocks(), kCgThreads, 0, stream_>>>(
        rhs_.data(), CoarseAggregates(), m_, x_.data(), res_.data(), coarse_res_.data(), s);
    SOLVERD_RETURN_IF_ERROR(::solverd::internal::CheckLaunch("CgStartKernel", stream_));
    QueuePrecondition(/*start=*/true, &s->rz);
    CgCheckStartKernel<<<1, 1, 0, stream_>>>(system.relative_target, system.max_iterations,
                                              s);
    SOLVERD_RETURN_IF_ERROR(::solverd::internal::CheckLaunch("CgCheckStartKernel", stream_));
    CgScalars host;
    do {
      for (int k = 0; k < kCgStepsPerCheck; ++k) {
        SOLVERD_RETURN_IF_ERROR(QueueCgStep(system.max_iterations));
      }
      SOLVERD_RETURN_IF_ERROR(scalars_.DownloadRange(0, 1, &host, stream_));
    } while (!host.done);
    *iterations = host.iterations;
    dy->resize(m_);
    return x_.DownloadRange(0, m_, dy->data(), stream_);
  }

 private:
  static constexpr int kCgStepsPerCheck = 8;

  unsigned ColumnBlocks() const { return BlocksFor(m_, kCgThreads); }

  // The system's vectors in, room for the loop's.
  Status Upload(const SchurSystem& system) {
    SOLVERD_RETURN_IF_ERROR(inv_dr_.UploadReserved(system.inv_dr.data(), n_, stream_));
    SOLVERD_RETURN_IF_ERROR(dc_.UploadReserved(system.dc.data(), m_, stream_));
    SOLVERD_RETURN_IF_ERROR(active_.UploadReserved(system.active.data(), m_, stream_));
    SOLVERD_RETURN_IF_ERROR(rhs_.UploadReserved(system.rhs.data(), m_, stream_));
    SOLVERD_RETURN_IF_ERROR(inv_diag_.UploadReserved(system.inv_diag.data(), m_, stream_));
    for (DeviceBuffer<double>* b : {&x_, &res_, &z_, &dir_, &schur_dir_, &back_}) {
      SOLVERD_RETURN_IF_ERROR(b->Reserve(m_));
    }
    SOLVERD_RETURN_IF_ERROR(rows_.Reserve(n_));
    SOLVERD_RETURN_IF_ERROR(scalars_.Reserve(1));
    const CoarseSpace& coarse = system.coarse;
    coarse_size_ = coarse.size;
    if (coarse.size == 0) return Status::Ok();
    const std::vector<int> aggregate(coarse.aggregate.begin(), coarse.aggregate.end());
    SOLVERD_RETURN_IF_ERROR(aggregate_.UploadReserved(aggregate.data(), m_, stream_));
    SOLVERD_RETURN_IF_ERROR(coarse_inverse_.UploadReserved(
        coarse.inverse.data(), static_cast<size_t>(coarse.size) * coarse.size, stream_));
    SOLVERD_RETURN_IF_ERROR(coarse_res_.Reserve(coarse.size));
    return coarse_z_.Reserve(coarse.size);
  }

  // The aggregates for the kernels; null without a coarse level.
  const int* CoarseAggregates() const { return coarse_size_ > 0 ? aggregate_.data() : nullptr; }

  Status ZeroCoarseResidual() {
    if (coarse_size_ == 0) return Status::Ok();
    SOLVERD_CUDA_RETURN_IF_ERROR(
        cudaMemsetAsync(coarse_res_.data(), 0, coarse_size_ * sizeof(double), stream_));
    return Status::Ok();
  }

  // z = M^-1 r from r and R r, *rz += r . z; d = z too when `start`.
  void QueuePrecondition(bool start, double* rz) {
    if (coarse_size_ > 0) {
      CgCoarseKernel<<<1, kCgThreads, 0, stream_>>>(coarse_inverse_.data(), coarse_res_.data(),
                                                     coarse_size_, scalars_.data(),
                                                     coarse_z_.data());
    }
    CgPreconditionKernel<<<ColumnBlocks(), kCgThreads, 0, stream_>>>(
        inv_diag_.data(), CoarseAggregates(), coarse_z_.data(), res_.data(), m_, start,
        z_.data(), dir_.data(), scalars_.data(), rz);
  }

  // One CG iteration's launches, no-ops once done.
  Status QueueCgStep(long long max_iterations) {
    CgScalars* s = scalars_.data();
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(rows_.data(), 0, n_ * sizeof(double), stream_));
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(back_.data(), 0, m_ * sizeof(double), stream_));
    if (plan_.nnz > 0) {
      const unsigned entry_blocks = BlocksFor(plan_.nnz, kCgThreads);
      CgRowsKernel<<<entry_blocks, kCgThreads, 0, stream_>>>(
          plan_.rows, plan_.cols, plan_.vals, plan_.nnz, dir_.data(), s, rows_.data());
      CgBackKernel<<<entry_blocks, kCgThreads, 0, stream_>>>(plan_.rows, plan_.cols, plan_.vals,
                                                              plan_.nnz, inv_dr_.data(),
                                                              rows_.data(), s, back_.data());
    }
    CgApplyKernel<<<ColumnBlocks(), kCgThreads, 0, stream_>>>(
        active_.data(), dc_.data(), dir_.data(), back_.data(), m_, schur_dir_.data(), s);
    CgStepLengthKernel<<<1, 1, 0, stream_>>>(s);
    SOLVERD_RETURN_IF_ERROR(ZeroCoarseResidual());
    CgStepKernel<<<ColumnBlocks(), kCgThreads, 0, stream_>>>(
        dir_.data(), schur_dir_.data(), CoarseAggregates(), m_, x_.data(), res_.data(),
        coarse_res_.data(), s);
    QueuePrecondition(/*start=*/false, &s->rz_next);
    CgNextKernel<<<1, 1, 0, stream_>>>(max_iterations, s);
    CgDirectionKernel<<<ColumnBlocks(), kCgThreads, 0, stream_>>>(z_.data(), m_, s,
                                                                   dir_.data());
    return ::solverd::internal::CheckLaunch("CG step kernels", stream_);
  }

  DeviceSparsePlan plan_;
  long n_ = 0, m_ = 0;
  cudaStream_t stream_ = nullptr;
  DeviceBuffer<double> inv_dr_, dc_, active_, rhs_, inv_diag_;  // the system
  DeviceBuffer<double> x_, res_, z_, dir_, schur_dir_, back_, rows_;
  DeviceBuffer<CgScalars> scalars_;
  // The coarse level (coarse_size_ 0: none): R r, then inverse R r.
  int coarse_size_ = 0;
  DeviceBuffer<int> aggregate_;
  DeviceBuffer<double> coarse_inverse_, coarse_res_, coarse_z_;
};

}  // namespace
}  // namespace solverd::ot::internal

#endif  // SOLVERD_KERNELS_OT_SCHUR_CG_DEVICE_CUH_
