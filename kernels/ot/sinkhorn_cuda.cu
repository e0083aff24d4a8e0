// CUDA backend of log-domain Sinkhorn: entry kernels (thin wrappers around
// sinkhorn_agent.cuh) and the dispatch that sizes grids and launches them on
// the caller's stream. C lives on the device for the whole solve and is
// never copied back; only per-row figures cross to the host.
#include <cuda_runtime.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "common/cuda_check.h"
#include "common/device_buffer.cuh"
#include "ot/sinkhorn_agent.cuh"
#include "ot/sinkhorn_backend.h"
#include "ot/sinkhorn_tuning.h"

namespace solverd::ot::internal {
namespace {

using Tuning = SinkhornTuning;
using ::solverd::internal::CheckLaunch;

__global__ void __launch_bounds__(Tuning::kElementwiseThreads)
CostFromPointsKernel(const double* xs, const double* ys, long n, long m, long dim,
                     int p, double* cost) {
  long k = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (k >= n * m) return;
  long i = k / m, j = k % m;
  cost[k] = PointCost(xs + i * dim, ys + j * dim, dim, p);
}

__global__ void __launch_bounds__(Tuning::kRowBlockThreads)
RowPassKernel(const double* cost, const double* x, const double* y, const double* a,
              long m, double eta, double* lse, double* row_error) {
  long i = blockIdx.x;
  LogSumExp acc = RowLse<Tuning::kRowBlockThreads>(cost + i * m, y, m, eta);
  if (threadIdx.x == 0) {
    lse[i] = acc.value();
    row_error[i] = fabs(MarginalFromLse(x[i], lse[i], eta) - a[i]);
  }
}

__global__ void __launch_bounds__(Tuning::kElementwiseThreads)
UpdateRowsKernel(const double* a, const double* lse, long n, double eta, double* x) {
  long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (i < n) x[i] = BalancedPotential(a[i], lse[i], eta);
}

__global__ void __launch_bounds__(Tuning::kColumnBlockThreads)
ColumnChunkKernel(const double* cost, const double* x, long n, long m, double eta,
                  LogSumExp* partial) {
  long j = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (j >= m) return;
  long begin = blockIdx.y * static_cast<long>(Tuning::kColumnRowsPerChunk);
  long end = min(n, begin + Tuning::kColumnRowsPerChunk);
  partial[blockIdx.y * m + j] = ColumnChunkLse(cost, x, m, j, begin, end, eta);
}

__global__ void __launch_bounds__(Tuning::kElementwiseThreads)
UpdateColumnsKernel(const LogSumExp* partial, const double* b, long m, long chunks,
                    double eta, double* y) {
  long j = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (j >= m) return;
  LogSumExp acc;
  for (long c = 0; c < chunks; ++c) acc.Merge(partial[c * m + j]);
  y[j] = BalancedPotential(b[j], acc.value(), eta);
}

__global__ void __launch_bounds__(Tuning::kRowBlockThreads)
PlanTotalsKernel(const double* cost, const double* x, const double* y, long m,
                 double eta, double* row_cost, double* row_plogp) {
  long i = blockIdx.x;
  PlanTerms t = RowPlanTerms<Tuning::kRowBlockThreads>(cost + i * m, x[i], y, m, eta);
  if (threadIdx.x == 0) {
    row_cost[i] = t.cost;
    row_plogp[i] = t.plogp;
  }
}

__global__ void __launch_bounds__(Tuning::kElementwiseThreads)
PlanKernel(const double* cost, const double* x, const double* y, long n, long m,
           double eta, double* plan) {
  long k = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (k < n * m) plan[k] = exp(LogPlan(eta, x[k / m], y[k % m], cost[k]));
}

unsigned Blocks(long items, int threads) {
  return static_cast<unsigned>((items + threads - 1) / threads);
}

double HostSum(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0);
}

class CudaSinkhorn final : public SinkhornBackend {
 public:
  CudaSinkhorn(const Problem& p, cudaStream_t stream)
      : p_(p), stream_(stream),
        chunks_((p.n + Tuning::kColumnRowsPerChunk - 1) / Tuning::kColumnRowsPerChunk) {}

  Status Init() {
    SOLVERD_RETURN_IF_ERROR(a_.Upload(p_.a.data(), p_.n, stream_));
    SOLVERD_RETURN_IF_ERROR(b_.Upload(p_.b.data(), p_.m, stream_));
    std::vector<double> zeros(std::max(p_.n, p_.m), 0.0);
    SOLVERD_RETURN_IF_ERROR(x_.Upload(zeros.data(), p_.n, stream_));
    SOLVERD_RETURN_IF_ERROR(y_.Upload(zeros.data(), p_.m, stream_));
    SOLVERD_RETURN_IF_ERROR(lse_.Allocate(p_.n));
    SOLVERD_RETURN_IF_ERROR(row_a_.Allocate(p_.n));
    SOLVERD_RETURN_IF_ERROR(row_b_.Allocate(p_.n));
    SOLVERD_RETURN_IF_ERROR(partial_.Allocate(chunks_ * p_.m));
    if (!p_.has_points()) return cost_.Upload(p_.cost.data(), p_.n * p_.m, stream_);
    DeviceBuffer<double> xs, ys;
    SOLVERD_RETURN_IF_ERROR(xs.Upload(p_.x_points.data(), p_.x_points.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(ys.Upload(p_.y_points.data(), p_.y_points.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(cost_.Allocate(p_.n * p_.m));
    CostFromPointsKernel<<<Blocks(p_.n * p_.m, Tuning::kElementwiseThreads),
                           Tuning::kElementwiseThreads, 0, stream_>>>(
        xs.data(), ys.data(), p_.n, p_.m, p_.dim, p_.cost_power, cost_.data());
    SOLVERD_RETURN_IF_ERROR(CheckLaunch("CostFromPointsKernel", stream_));
    // xs/ys are freed on return; cudaFree waits for the kernel using them.
    return Status::Ok();
  }

  Status RowPass(double* row_error) override {
    RowPassKernel<<<p_.n, Tuning::kRowBlockThreads, 0, stream_>>>(
        cost_.data(), x_.data(), y_.data(), a_.data(), p_.m, p_.eta, lse_.data(),
        row_a_.data());
    SOLVERD_RETURN_IF_ERROR(CheckLaunch("RowPassKernel", stream_));
    if (row_error == nullptr) return Status::Ok();
    std::vector<double> errors(p_.n);
    SOLVERD_RETURN_IF_ERROR(row_a_.Download(errors.data(), stream_));
    *row_error = HostSum(errors);
    return Status::Ok();
  }

  Status UpdateRows() override {
    UpdateRowsKernel<<<Blocks(p_.n, Tuning::kElementwiseThreads),
                       Tuning::kElementwiseThreads, 0, stream_>>>(
        a_.data(), lse_.data(), p_.n, p_.eta, x_.data());
    return CheckLaunch("UpdateRowsKernel", stream_);
  }

  Status UpdateColumns() override {
    dim3 grid(Blocks(p_.m, Tuning::kColumnBlockThreads), static_cast<unsigned>(chunks_));
    ColumnChunkKernel<<<grid, Tuning::kColumnBlockThreads, 0, stream_>>>(
        cost_.data(), x_.data(), p_.n, p_.m, p_.eta, partial_.data());
    SOLVERD_RETURN_IF_ERROR(CheckLaunch("ColumnChunkKernel", stream_));
    UpdateColumnsKernel<<<Blocks(p_.m, Tuning::kElementwiseThreads),
                          Tuning::kElementwiseThreads, 0, stream_>>>(
        partial_.data(), b_.data(), p_.m, chunks_, p_.eta, y_.data());
    return CheckLaunch("UpdateColumnsKernel", stream_);
  }

  Status PlanTotals(double* transport_cost, double* plogp) override {
    PlanTotalsKernel<<<p_.n, Tuning::kRowBlockThreads, 0, stream_>>>(
        cost_.data(), x_.data(), y_.data(), p_.m, p_.eta, row_a_.data(), row_b_.data());
    SOLVERD_RETURN_IF_ERROR(CheckLaunch("PlanTotalsKernel", stream_));
    std::vector<double> costs(p_.n), plogps(p_.n);
    SOLVERD_RETURN_IF_ERROR(row_a_.Download(costs.data(), stream_));
    SOLVERD_RETURN_IF_ERROR(row_b_.Download(plogps.data(), stream_));
    *transport_cost = HostSum(costs);
    *plogp = HostSum(plogps);
    return Status::Ok();
  }

  Status CopyPotentials(std::vector<double>* x, std::vector<double>* y) override {
    x->resize(p_.n);
    y->resize(p_.m);
    SOLVERD_RETURN_IF_ERROR(x_.Download(x->data(), stream_));
    return y_.Download(y->data(), stream_);
  }

  Status CopyPlan(std::vector<double>* plan) override {
    DeviceBuffer<double> dense;
    SOLVERD_RETURN_IF_ERROR(dense.Allocate(p_.n * p_.m));
    PlanKernel<<<Blocks(p_.n * p_.m, Tuning::kElementwiseThreads),
                 Tuning::kElementwiseThreads, 0, stream_>>>(
        cost_.data(), x_.data(), y_.data(), p_.n, p_.m, p_.eta, dense.data());
    SOLVERD_RETURN_IF_ERROR(CheckLaunch("PlanKernel", stream_));
    plan->resize(p_.n * p_.m);
    return dense.Download(plan->data(), stream_);
  }

 private:
  const Problem& p_;
  const cudaStream_t stream_;
  const long chunks_;
  DeviceBuffer<double> cost_, a_, b_, x_, y_, lse_;
  DeviceBuffer<double> row_a_, row_b_;  // per-row scratch: errors, plan totals
  DeviceBuffer<LogSumExp> partial_;     // chunks_ x m column accumulators
};

}  // namespace

Status SolveSinkhornCuda(const Device& device, StreamHandle stream,
                         const Problem& problem, const Options& options,
                         ProgressSink* sink, const CancelToken* cancel,
                         Result* result) {
  SOLVERD_CUDA_RETURN_IF_ERROR(cudaSetDevice(device.index));
  CudaSinkhorn backend(problem, static_cast<cudaStream_t>(stream));
  SOLVERD_RETURN_IF_ERROR(backend.Init());
  return RunSinkhorn(backend, problem, options, sink, cancel, result);
}

}  // namespace solverd::ot::internal
