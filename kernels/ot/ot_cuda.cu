// CUDA backend of the ot solvers: the dispatch that sizes grids and
// launches the kernels of ot_kernels.cuh on the caller's stream. C lives on
// the device for the whole solve and is never copied back; only vectors of
// size n or m cross to the host.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "common/cuda_check.h"
#include "common/device_buffer.cuh"
#include "ot/driver_util.h"
#include "ot/ot_backend.h"
#include "ot/ot_kernels.cuh"
#include "ot/point_cost_cuda.h"
#include "ot/schur_cg_device.cuh"

namespace solverd::ot::internal {
namespace {

using ::solverd::internal::CheckLaunch;

unsigned Blocks(long items, int threads) {
  return static_cast<unsigned>((items + threads - 1) / threads);
}

double HostSum(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0);
}

class CudaOtBackend final : public OtBackend {
 public:
  CudaOtBackend(const Problem& p, cudaStream_t stream)
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
    SOLVERD_RETURN_IF_ERROR(column_sums_.Allocate(chunks_ * p_.m));
    SOLVERD_RETURN_IF_ERROR(row_m_.Allocate(p_.m));
    SOLVERD_RETURN_IF_ERROR(column_error_.Allocate(p_.m));
    if (!p_.has_points()) return cost_.Upload(p_.cost.data(), p_.n * p_.m, stream_);
    SOLVERD_RETURN_IF_ERROR(cost_.Allocate(p_.n * p_.m));
    return CostFromPointsCuda(p_, stream_, cost_.data());
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
    if (column_error_left_) {  // a relaxed column update: what it left
      std::vector<double> left(p_.m);
      SOLVERD_RETURN_IF_ERROR(column_error_.Download(left.data(), stream_));
      *row_error += HostSum(left);
    }
    return Status::Ok();
  }

  Status UpdateRows(const Relaxation& relaxation) override {
    UpdateRowsKernel<<<Blocks(p_.n, Tuning::kElementwiseThreads),
                       Tuning::kElementwiseThreads, 0, stream_>>>(
        a_.data(), lse_.data(), p_.n, p_.eta, relaxation, x_.data());
    return CheckLaunch("UpdateRowsKernel", stream_);
  }

  Status UpdateColumns(const Relaxation& relaxation) override {
    column_error_left_ = relaxation.omega != 1;
    dim3 grid(Blocks(p_.m, Tuning::kColumnBlockThreads), static_cast<unsigned>(chunks_));
    ColumnChunkKernel<<<grid, Tuning::kColumnBlockThreads, 0, stream_>>>(
        cost_.data(), x_.data(), p_.n, p_.m, p_.eta, partial_.data());
    SOLVERD_RETURN_IF_ERROR(CheckLaunch("ColumnChunkKernel", stream_));
    UpdateColumnsKernel<<<Blocks(p_.m, Tuning::kElementwiseThreads),
                          Tuning::kElementwiseThreads, 0, stream_>>>(
        partial_.data(), b_.data(), p_.m, chunks_, p_.eta, relaxation, y_.data(),
        column_error_.data());
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

  Status CopySparsePlan(double threshold, SparsePlan* plan) override {
    DeviceBuffer<int> rows, cols;
    DeviceBuffer<double> vals;
    unsigned long long nnz = 0;
    SOLVERD_RETURN_IF_ERROR(CollectEntries(std::log(threshold), /*ranked=*/false,
                                           kMaxSparsePlanEntries, &rows, &cols, &vals, &nnz));
    std::vector<int> host_rows(nnz), host_cols(nnz);
    plan->values.resize(nnz);
    if (nnz > 0) {
      SOLVERD_RETURN_IF_ERROR(rows.Download(host_rows.data(), stream_));
      SOLVERD_RETURN_IF_ERROR(cols.Download(host_cols.data(), stream_));
      SOLVERD_RETURN_IF_ERROR(vals.Download(plan->values.data(), stream_));
    }
    plan->rows.assign(host_rows.begin(), host_rows.end());
    plan->cols.assign(host_cols.begin(), host_cols.end());
    return Status::Ok();
  }

  Status SetPotentials(const std::vector<double>& x, const std::vector<double>& y) override {
    column_error_left_ = false;  // unknown until the next column update: RowPass()
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(x_.data(), x.data(), p_.n * sizeof(double),
                                                 cudaMemcpyHostToDevice, stream_));
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(y_.data(), y.data(), p_.m * sizeof(double),
                                                 cudaMemcpyHostToDevice, stream_));
    return Status::Ok();
  }

  Status PlanMarginals(std::vector<double>* r, std::vector<double>* c, double* total) override {
    PlanRowSumsKernel<<<p_.n, Tuning::kRowBlockThreads, 0, stream_>>>(
        cost_.data(), x_.data(), y_.data(), p_.m, p_.eta, row_a_.data());
    SOLVERD_RETURN_IF_ERROR(CheckLaunch("PlanRowSumsKernel", stream_));
    dim3 grid(Blocks(p_.m, Tuning::kColumnBlockThreads), static_cast<unsigned>(chunks_));
    ColumnChunkSumKernel<<<grid, Tuning::kColumnBlockThreads, 0, stream_>>>(
        cost_.data(), x_.data(), y_.data(), p_.n, p_.m, p_.eta, column_sums_.data());
    SOLVERD_RETURN_IF_ERROR(CheckLaunch("ColumnChunkSumKernel", stream_));
    ColumnSumsKernel<<<Blocks(p_.m, Tuning::kElementwiseThreads), Tuning::kElementwiseThreads,
                       0, stream_>>>(column_sums_.data(), p_.m, chunks_, row_m_.data());
    SOLVERD_RETURN_IF_ERROR(CheckLaunch("ColumnSumsKernel", stream_));
    r->resize(p_.n);
    c->resize(p_.m);
    SOLVERD_RETURN_IF_ERROR(row_a_.Download(r->data(), stream_));
    SOLVERD_RETURN_IF_ERROR(row_m_.Download(c->data(), stream_));
    *total = HostSum(*r);
    return Status::Ok();
  }

  Status LogPlanHistogram(const PlanRanking& ranking, double lo, double hi, int64_t row_stride,
                          std::vector<int64_t>* counts, std::vector<double>* masses) override {
    SOLVERD_RETURN_IF_ERROR(UploadRanking(ranking));
    DeviceBuffer<unsigned long long> bins;
    DeviceBuffer<double> bin_masses;
    SOLVERD_RETURN_IF_ERROR(bins.Allocate(Tuning::kHistogramBins));
    SOLVERD_RETURN_IF_ERROR(bin_masses.Allocate(Tuning::kHistogramBins));
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(
        bins.data(), 0, Tuning::kHistogramBins * sizeof(unsigned long long), stream_));
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(
        bin_masses.data(), 0, Tuning::kHistogramBins * sizeof(double), stream_));
    LogPlanHistogramKernel<<<EntryBlocks(), Tuning::kElementwiseThreads, 0, stream_>>>(
        cost_.data(), x_.data(), y_.data(), row_weight_.data(), col_weight_.data(), p_.n, p_.m,
        row_stride, p_.eta, lo, Tuning::kHistogramBins / (hi - lo), bins.data(),
        bin_masses.data());
    SOLVERD_RETURN_IF_ERROR(CheckLaunch("LogPlanHistogramKernel", stream_));
    std::vector<unsigned long long> host(Tuning::kHistogramBins);
    SOLVERD_RETURN_IF_ERROR(bins.Download(host.data(), stream_));
    counts->assign(host.begin(), host.end());
    masses->resize(Tuning::kHistogramBins);
    return bin_masses.Download(masses->data(), stream_);
  }

  Status SparsifyPlan(const PlanRanking& ranking, double threshold, int64_t* kept) override {
    SOLVERD_RETURN_IF_ERROR(UploadRanking(ranking));
    unsigned long long nnz = 0;
    SOLVERD_RETURN_IF_ERROR(CollectEntries(threshold, /*ranked=*/true, INT64_MAX, &sparse_rows_,
                                           &sparse_cols_, &sparse_vals_, &nnz));
    nnz_ = static_cast<long>(nnz);
    *kept = nnz_;
    return Status::Ok();
  }

  // Every entry gathered as the sparse plan's COO (16 bytes each), up to
  // kMaxWholePlanBytes: the sparse products and the device CG then serve
  // unchanged.
  Status UseWholePlan(bool* used) override {
    *used = false;
    if (p_.n * p_.m * 16 > kMaxWholePlanBytes) return Status::Ok();
    unsigned long long nnz = 0;
    SOLVERD_RETURN_IF_ERROR(CollectEntries(-INFINITY, /*ranked=*/false, INT64_MAX, &sparse_rows_,
                                           &sparse_cols_, &sparse_vals_, &nnz));
    nnz_ = static_cast<long>(nnz);
    *used = true;
    return Status::Ok();
  }

  Status RefreshSparsePlan(double* kept_mass) override {
    DeviceBuffer<double> sum;
    SOLVERD_RETURN_IF_ERROR(sum.Allocate(1));
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(sum.data(), 0, sizeof(double), stream_));
    if (nnz_ > 0) {
      RefreshSparseKernel<<<Blocks(nnz_, Tuning::kElementwiseThreads),
                            Tuning::kElementwiseThreads, 0, stream_>>>(
          cost_.data(), x_.data(), y_.data(), p_.m, p_.eta, sparse_rows_.data(),
          sparse_cols_.data(), nnz_, sparse_vals_.data(), sum.data());
      SOLVERD_RETURN_IF_ERROR(CheckLaunch("RefreshSparseKernel", stream_));
    }
    double mass = 0;
    SOLVERD_RETURN_IF_ERROR(sum.Download(&mass, stream_));
    if (kept_mass != nullptr) *kept_mass = mass;
    return Status::Ok();
  }

  Status SparseMultiply(bool transpose, const std::vector<double>& in,
                        std::vector<double>* out) override {
    const long out_size = transpose ? p_.m : p_.n;
    DeviceBuffer<double> din, dout;
    SOLVERD_RETURN_IF_ERROR(din.Upload(in.data(), in.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(dout.Allocate(out_size));
    SOLVERD_CUDA_RETURN_IF_ERROR(
        cudaMemsetAsync(dout.data(), 0, out_size * sizeof(double), stream_));
    if (nnz_ > 0) {
      SparseMultiplyKernel<<<Blocks(nnz_, Tuning::kElementwiseThreads),
                             Tuning::kElementwiseThreads, 0, stream_>>>(
          sparse_rows_.data(), sparse_cols_.data(), sparse_vals_.data(), nnz_, transpose,
          din.data(), dout.data());
      SOLVERD_RETURN_IF_ERROR(CheckLaunch("SparseMultiplyKernel", stream_));
    }
    out->resize(out_size);
    return dout.Download(out->data(), stream_);
  }

  Status SparseColumnSquares(const std::vector<double>& w, std::vector<double>* out) override {
    DeviceBuffer<double> dw, dout;
    SOLVERD_RETURN_IF_ERROR(dw.Upload(w.data(), p_.n, stream_));
    SOLVERD_RETURN_IF_ERROR(dout.Allocate(p_.m));
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(dout.data(), 0, p_.m * sizeof(double), stream_));
    if (nnz_ > 0) {
      SparseColumnSquaresKernel<<<Blocks(nnz_, Tuning::kElementwiseThreads),
                                  Tuning::kElementwiseThreads, 0, stream_>>>(
          sparse_rows_.data(), sparse_cols_.data(), sparse_vals_.data(), nnz_, dw.data(),
          dout.data());
      SOLVERD_RETURN_IF_ERROR(CheckLaunch("SparseColumnSquaresKernel", stream_));
    }
    out->resize(p_.m);
    return dout.Download(out->data(), stream_);
  }

  Status SparseHeaviestWeightedRows(const std::vector<double>& weight,
                                    std::vector<int32_t>* rows) override {
    DeviceBuffer<double> dweight;
    DeviceBuffer<unsigned long long> best;
    DeviceBuffer<int> heaviest;
    SOLVERD_RETURN_IF_ERROR(dweight.Upload(weight.data(), p_.n, stream_));
    SOLVERD_RETURN_IF_ERROR(best.Allocate(p_.m));
    SOLVERD_RETURN_IF_ERROR(heaviest.Allocate(p_.m));
    SOLVERD_CUDA_RETURN_IF_ERROR(
        cudaMemsetAsync(best.data(), 0, p_.m * sizeof(unsigned long long), stream_));
    SOLVERD_CUDA_RETURN_IF_ERROR(
        cudaMemsetAsync(heaviest.data(), 0xff, p_.m * sizeof(int), stream_));  // -1
    if (nnz_ > 0) {
      const unsigned blocks = Blocks(nnz_, Tuning::kElementwiseThreads);
      ColumnBestKeyKernel<<<blocks, Tuning::kElementwiseThreads, 0, stream_>>>(
          sparse_rows_.data(), sparse_cols_.data(), sparse_vals_.data(), nnz_, dweight.data(),
          best.data());
      ColumnBestRowKernel<<<blocks, Tuning::kElementwiseThreads, 0, stream_>>>(
          sparse_rows_.data(), sparse_cols_.data(), sparse_vals_.data(), nnz_, dweight.data(),
          best.data(), heaviest.data());
      SOLVERD_RETURN_IF_ERROR(CheckLaunch("ColumnBest*Kernel", stream_));
    }
    std::vector<int> host(p_.m);
    SOLVERD_RETURN_IF_ERROR(heaviest.Download(host.data(), stream_));
    rows->assign(host.begin(), host.end());
    return Status::Ok();
  }

  Status SparseGroupRowSums(const std::vector<int32_t>& group, int size,
                            std::vector<double>* q) override {
    const std::vector<int> host_group(group.begin(), group.end());
    DeviceBuffer<int> dgroup;
    DeviceBuffer<double> dq;
    SOLVERD_RETURN_IF_ERROR(dgroup.Upload(host_group.data(), p_.m, stream_));
    SOLVERD_RETURN_IF_ERROR(dq.Allocate(p_.n * size));
    SOLVERD_CUDA_RETURN_IF_ERROR(
        cudaMemsetAsync(dq.data(), 0, p_.n * size * sizeof(double), stream_));
    if (nnz_ > 0) {
      GroupRowSumsKernel<<<Blocks(nnz_, Tuning::kElementwiseThreads),
                           Tuning::kElementwiseThreads, 0, stream_>>>(
          sparse_rows_.data(), sparse_cols_.data(), sparse_vals_.data(), nnz_, dgroup.data(),
          size, dq.data());
      SOLVERD_RETURN_IF_ERROR(CheckLaunch("GroupRowSumsKernel", stream_));
    }
    q->resize(p_.n * size);
    return dq.Download(q->data(), stream_);
  }

  Status SolveSchur(const SchurSystem& system, std::vector<double>* dy, int64_t* iterations,
                    std::vector<double>* plan_dy) override {
    plan_dy->clear();  // not tracked: the driver's product after the solve
    const DeviceSparsePlan plan{sparse_rows_.data(), sparse_cols_.data(), sparse_vals_.data(),
                                nnz_};
    return cg_.Solve(system, plan, p_.n, p_.m, stream_, dy, iterations);
  }

 private:
  static constexpr int64_t kMaxWholePlanBytes = int64_t{4} << 30;

  // Gathers the entries with log P >= log_threshold into (rows, cols, vals)
  // on the device: one pass counts, the second fills. RESOURCE_EXHAUSTED
  // when there are more than `limit`.
  // The entries ranked at or above threshold by the uploaded ranking
  // (UploadRanking()) when `ranked`, else those with log P >= threshold.
  Status CollectEntries(double threshold, bool ranked, int64_t limit, DeviceBuffer<int>* rows,
                        DeviceBuffer<int>* cols, DeviceBuffer<double>* vals,
                        unsigned long long* nnz) {
    DeviceBuffer<unsigned long long> count;
    SOLVERD_RETURN_IF_ERROR(count.Allocate(1));
    for (bool fill : {false, true}) {
      SOLVERD_CUDA_RETURN_IF_ERROR(
          cudaMemsetAsync(count.data(), 0, sizeof(unsigned long long), stream_));
      CollectSparseKernel<<<EntryBlocks(), Tuning::kElementwiseThreads, 0, stream_>>>(
          cost_.data(), x_.data(), y_.data(), ranked ? row_weight_.data() : nullptr,
          ranked ? col_weight_.data() : nullptr, p_.n, p_.m, p_.eta, threshold, count.data(),
          fill ? rows->data() : nullptr, fill ? cols->data() : nullptr,
          fill ? vals->data() : nullptr);
      SOLVERD_RETURN_IF_ERROR(CheckLaunch("CollectSparseKernel", stream_));
      if (fill) break;
      SOLVERD_RETURN_IF_ERROR(count.Download(nnz, stream_));
      if (static_cast<int64_t>(*nnz) > limit) return TooManyEntries(std::exp(threshold));
      SOLVERD_RETURN_IF_ERROR(rows->Allocate(*nnz));
      SOLVERD_RETURN_IF_ERROR(cols->Allocate(*nnz));
      SOLVERD_RETURN_IF_ERROR(vals->Allocate(*nnz));
    }
    return Status::Ok();
  }

  // The ranking's weights to row_weight_, col_weight_.
  Status UploadRanking(const PlanRanking& ranking) {
    SOLVERD_RETURN_IF_ERROR(row_weight_.UploadReserved(ranking.row.data(), p_.n, stream_));
    return col_weight_.UploadReserved(ranking.col.data(), p_.m, stream_);
  }

  // Grid for the grid-stride loops over all n*m entries.
  unsigned EntryBlocks() const {
    return std::min<unsigned>(Blocks(p_.n * p_.m, Tuning::kElementwiseThreads),
                              Tuning::kMaxEntryBlocks);
  }

  const Problem& p_;
  const cudaStream_t stream_;
  const long chunks_;
  DeviceBuffer<double> cost_, a_, b_, x_, y_, lse_;
  DeviceBuffer<double> row_a_, row_b_;  // per-row scratch: errors, plan totals
  DeviceBuffer<LogSumExp> partial_;     // chunks_ x m column accumulators
  DeviceBuffer<double> column_sums_;    // chunks_ x m column partial sums
  DeviceBuffer<double> row_m_;          // per-column scratch: column sums
  // Per column, the error the last relaxed column update left; counted
  // by RowPass() while column_error_left_ (not after SetPotentials()).
  DeviceBuffer<double> column_error_;
  bool column_error_left_ = false;
  DeviceBuffer<int> sparse_rows_, sparse_cols_;  // the sparse plan, COO
  DeviceBuffer<double> sparse_vals_;
  DeviceBuffer<double> row_weight_, col_weight_;  // the last PlanRanking
  long nnz_ = 0;
  DeviceSchurCg cg_;  // SolveSchur()'s, kept from step to step
};

}  // namespace

Status SolveCuda(const Device& device, StreamHandle stream, const Problem& problem,
                 const Options& options, ProgressSink* sink, const CancelToken* cancel,
                 Result* result) {
  SOLVERD_CUDA_RETURN_IF_ERROR(cudaSetDevice(device.index));
  CudaOtBackend backend(problem, static_cast<cudaStream_t>(stream));
  SOLVERD_RETURN_IF_ERROR(backend.Init());
  return RunMethod(backend, problem, options, sink, cancel, result);
}

Status ContinueSnsCuda(const Device& device, StreamHandle stream, const Problem& problem,
                       const Options& options, const std::vector<double>& x,
                       const std::vector<double>& y, ProgressSink* sink,
                       const CancelToken* cancel, SolveState* state, Result* result) {
  SOLVERD_CUDA_RETURN_IF_ERROR(cudaSetDevice(device.index));
  CudaOtBackend backend(problem, static_cast<cudaStream_t>(stream));
  SOLVERD_RETURN_IF_ERROR(backend.Init());
  SOLVERD_RETURN_IF_ERROR(backend.SetPotentials(x, y));
  return FinishSns(backend, problem, options, sink, cancel, state, result);
}

}  // namespace solverd::ot::internal
