// The batched Sinkhorn loop on CUDA (batch.h). The stacked problems live on
// the device; each iteration is one launch per pass over all problems still
// running, and the host reads one error per problem, only at check steps.
// Each problem runs the SinkhornSteps that SinkhornStage() runs (the same
// measurement, stopping test, progress and limits), so a problem ends where
// it would end alone. SNS problems, and `auto` ones that stall, then go on
// to their Newton stage one by one from the potentials reached here, as
// they would have alone.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <vector>

#include "common/cuda_check.h"
#include "common/device_buffer.cuh"
#include "ot/batch.h"
#include "ot/driver_util.h"
#include "ot/ot_batch_kernels.cuh"
#include "ot/ot_kernels.cuh"
#include "ot/point_cost_cuda.h"

namespace solverd::ot::internal {
namespace {

using ::solverd::internal::CheckLaunch;

// Where one problem of the batch stands. `steps` points into `state`:
// Tracks stay where they are built (a deque).
struct Track {
  explicit Track(BatchItem* batch_item)
      : item(batch_item),
        steps(*item->problem, item->options, SinkhornStageSteps(item->options),
              /*stop_on_stall=*/item->options.method == Method::kAuto, item->sink, item->cancel,
              &state) {}

  // Whether the problem goes on to a Newton stage after the batch.
  bool Continues() const {
    return steps.stalled() || (item->options.method == Method::kSns && !state.finished);
  }
  Track(const Track&) = delete;
  Track& operator=(const Track&) = delete;

  BatchItem* item;
  SolveState state;
  SinkhornSteps steps;
  bool running = true;
  bool check = false;     // this iteration measures
  double keep_below = 0;  // and updates unless its error is at most this
  Relaxation relaxation;  // and how it updates
};

class CudaSinkhornBatch {
 public:
  CudaSinkhornBatch(const Device& device, const std::vector<BatchItem*>& group,
                    cudaStream_t stream)
      : device_(device), n_(group[0]->problem->n), m_(group[0]->problem->m),
        count_(static_cast<int64_t>(group.size())),
        chunks_((n_ + Tuning::kColumnRowsPerChunk - 1) / Tuning::kColumnRowsPerChunk),
        stream_(stream) {
    for (BatchItem* item : group) tracks_.emplace_back(item);
  }

  Status Init() {
    std::vector<double> cost(count_ * n_ * m_), a(count_ * n_), b(count_ * m_), eta(count_);
    for (int64_t k = 0; k < count_; ++k) {
      const Problem& p = *tracks_[k].item->problem;
      if (!p.has_points()) std::copy(p.cost.begin(), p.cost.end(), &cost[k * n_ * m_]);
      std::copy(p.a.begin(), p.a.end(), &a[k * n_]);
      std::copy(p.b.begin(), p.b.end(), &b[k * m_]);
      eta[k] = p.eta;
    }
    SOLVERD_RETURN_IF_ERROR(cost_.Upload(cost.data(), cost.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(a_.Upload(a.data(), a.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(b_.Upload(b.data(), b.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(eta_.Upload(eta.data(), eta.size(), stream_));
    std::fill(a.begin(), a.end(), 0.0);
    std::fill(b.begin(), b.end(), 0.0);
    SOLVERD_RETURN_IF_ERROR(x_.Upload(a.data(), a.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(y_.Upload(b.data(), b.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(lse_.Allocate(count_ * n_));
    SOLVERD_RETURN_IF_ERROR(row_values_.Allocate(count_ * n_));
    SOLVERD_RETURN_IF_ERROR(row_values2_.Allocate(count_ * n_));
    SOLVERD_RETURN_IF_ERROR(totals_.Allocate(count_));
    SOLVERD_RETURN_IF_ERROR(partial_.Allocate(count_ * chunks_ * m_));
    SOLVERD_RETURN_IF_ERROR(column_error_.Allocate(count_ * m_));
    SOLVERD_CUDA_RETURN_IF_ERROR(
        cudaMemsetAsync(column_error_.data(), 0, count_ * m_ * sizeof(double), stream_));
    relaxation_host_.assign(count_, Relaxation());
    SOLVERD_RETURN_IF_ERROR(relaxation_.Upload(relaxation_host_.data(), count_, stream_));
    active_host_.assign(count_, 1);
    SOLVERD_RETURN_IF_ERROR(active_.Upload(active_host_.data(), count_, stream_));
    for (int64_t k = 0; k < count_; ++k) SOLVERD_RETURN_IF_ERROR(CostFromPoints(k));
    return Status::Ok();
  }

  // Iterates until every problem has finished or stalled.
  Status Run() {
    std::vector<double> errors(count_);
    while (Running() > 0) {
      bool any_check = false;
      for (Track& t : tracks_) {
        if (!t.running) continue;
        t.steps.Begin(&t.check, &t.keep_below);
        t.relaxation = t.steps.relaxation();
        any_check = any_check || t.check;
      }
      SOLVERD_RETURN_IF_ERROR(RowPass(any_check, &errors));
      for (int64_t k = 0; k < count_; ++k) {
        Track& t = tracks_[k];
        if (!t.running) continue;
        // What SinkhornIteration decides: update unless measured at or below.
        const bool updated = !t.check || !(errors[k] <= t.keep_below);
        t.running = t.steps.End(t.check ? errors[k] : -1, updated);
      }
      std::vector<uint8_t> running(count_);
      for (int64_t k = 0; k < count_; ++k) running[k] = tracks_[k].running ? 1 : 0;
      SOLVERD_RETURN_IF_ERROR(UploadActive(running));
      if (Running() > 0) SOLVERD_RETURN_IF_ERROR(Update());
    }
    return Status::Ok();
  }

  // Fills the results of the problems that finished here, and runs the
  // Newton stage of the others (ContinueSnsCuda), one by one.
  Status Finish() {
    std::vector<uint8_t> finished(count_);
    for (int64_t k = 0; k < count_; ++k) finished[k] = tracks_[k].Continues() ? 0 : 1;
    SOLVERD_RETURN_IF_ERROR(UploadActive(finished));
    std::vector<double> costs(count_), plogps(count_), x(count_ * n_), y(count_ * m_);
    SOLVERD_RETURN_IF_ERROR(PlanTotals(&costs, &plogps));
    SOLVERD_RETURN_IF_ERROR(x_.Download(x.data(), stream_));
    SOLVERD_RETURN_IF_ERROR(y_.Download(y.data(), stream_));
    for (int64_t k = 0; k < count_; ++k) {
      Track& t = tracks_[k];
      t.item->batched = true;
      if (t.Continues()) {
        const std::vector<double> xk(&x[k * n_], &x[(k + 1) * n_]);
        const std::vector<double> yk(&y[k * m_], &y[(k + 1) * m_]);
        const Status continued =
            ContinueSnsCuda(device_, stream_, *t.item->problem, t.item->options, xk, yk,
                            t.item->sink, t.item->cancel, &t.state, &t.item->result);
        t.item->status = continued;
        continue;
      }
      if (!t.steps.updated()) SOLVERD_RETURN_IF_ERROR(MeasureWholeError(k));
      Result& r = t.item->result;
      r = Result();
      FillResultFigures(*t.item->problem, t.state, costs[k], plogps[k], &r);
      r.x.assign(&x[k * n_], &x[(k + 1) * n_]);
      r.y.assign(&y[k * m_], &y[(k + 1) * m_]);
      if (t.item->options.want_plan) SOLVERD_RETURN_IF_ERROR(CopyPlan(k, &r.plan));
      t.item->status = t.state.stop;
    }
    return Status::Ok();
  }

 private:
  int64_t Running() const {
    return std::count_if(tracks_.begin(), tracks_.end(), [](const Track& t) { return t.running; });
  }

  Status CostFromPoints(int64_t k) {
    const Problem& p = *tracks_[k].item->problem;
    if (!p.has_points()) return Status::Ok();
    return CostFromPointsCuda(p, stream_, cost_.data() + k * n_ * m_);
  }

  // Makes `mask` the problems the kernels work on (uploaded when changed).
  Status UploadActive(const std::vector<uint8_t>& mask) {
    if (mask == active_host_) return Status::Ok();
    active_host_ = mask;
    return active_.UploadReserved(active_host_.data(), count_, stream_);
  }

  Status RowPass(bool want_errors, std::vector<double>* errors) {
    const dim3 rows(static_cast<unsigned>(n_), static_cast<unsigned>(count_));
    BatchRowPassKernel<<<rows, Tuning::kRowBlockThreads, 0, stream_>>>(
        cost_.data(), x_.data(), y_.data(), a_.data(), n_, m_, eta_.data(), active_.data(),
        lse_.data(), row_values_.data());
    SOLVERD_RETURN_IF_ERROR(CheckLaunch("BatchRowPassKernel", stream_));
    if (!want_errors) return Status::Ok();
    SOLVERD_RETURN_IF_ERROR(RowTotals(row_values_, errors));
    if (!any_relaxed_) return Status::Ok();
    // What the relaxed column updates left (zero after a plain one).
    std::vector<double> left(count_);
    SOLVERD_RETURN_IF_ERROR(RowTotals(column_error_, &left, m_));
    for (int64_t k = 0; k < count_; ++k) (*errors)[k] += left[k];
    return Status::Ok();
  }

  // Per problem, the sum of a per-row (per-column: length m_) vector,
  // downloaded.
  Status RowTotals(const DeviceBuffer<double>& rows, std::vector<double>* totals,
                   int64_t length = -1) {
    BatchRowTotalKernel<<<BlocksFor(count_, Tuning::kElementwiseThreads),
                          Tuning::kElementwiseThreads, 0, stream_>>>(
        rows.data(), length < 0 ? n_ : length, count_, active_.data(), totals_.data());
    SOLVERD_RETURN_IF_ERROR(CheckLaunch("BatchRowTotalKernel", stream_));
    return totals_.Download(totals->data(), stream_);
  }

  // Each problem's relaxation for this iteration (uploaded when changed).
  Status UploadRelaxations() {
    bool changed = false;
    for (int64_t k = 0; k < count_; ++k) {
      const Relaxation& r = tracks_[k].relaxation;
      Relaxation& uploaded = relaxation_host_[k];
      if (r.omega == uploaded.omega && r.min_log_ratio == uploaded.min_log_ratio) continue;
      uploaded = r;
      changed = true;
      any_relaxed_ = any_relaxed_ || r.omega != 1;
    }
    if (!changed) return Status::Ok();
    return relaxation_.UploadReserved(relaxation_host_.data(), count_, stream_);
  }

  Status Update() {
    SOLVERD_RETURN_IF_ERROR(UploadRelaxations());
    const dim3 rows(BlocksFor(n_, Tuning::kElementwiseThreads), static_cast<unsigned>(count_));
    BatchUpdateRowsKernel<<<rows, Tuning::kElementwiseThreads, 0, stream_>>>(
        a_.data(), lse_.data(), n_, eta_.data(), relaxation_.data(), active_.data(), x_.data());
    SOLVERD_RETURN_IF_ERROR(CheckLaunch("BatchUpdateRowsKernel", stream_));
    const dim3 chunks(BlocksFor(m_, Tuning::kColumnBlockThreads), static_cast<unsigned>(chunks_),
                      static_cast<unsigned>(count_));
    BatchColumnChunkKernel<<<chunks, Tuning::kColumnBlockThreads, 0, stream_>>>(
        cost_.data(), x_.data(), n_, m_, eta_.data(), active_.data(), partial_.data());
    SOLVERD_RETURN_IF_ERROR(CheckLaunch("BatchColumnChunkKernel", stream_));
    const dim3 columns(BlocksFor(m_, Tuning::kElementwiseThreads), static_cast<unsigned>(count_));
    BatchUpdateColumnsKernel<<<columns, Tuning::kElementwiseThreads, 0, stream_>>>(
        partial_.data(), b_.data(), m_, chunks_, eta_.data(), relaxation_.data(), active_.data(),
        y_.data(), column_error_.data());
    return CheckLaunch("BatchUpdateColumnsKernel", stream_);
  }

  Status PlanTotals(std::vector<double>* costs, std::vector<double>* plogps) {
    const dim3 rows(static_cast<unsigned>(n_), static_cast<unsigned>(count_));
    BatchPlanTotalsKernel<<<rows, Tuning::kRowBlockThreads, 0, stream_>>>(
        cost_.data(), x_.data(), y_.data(), n_, m_, eta_.data(), active_.data(),
        row_values_.data(), row_values2_.data());
    SOLVERD_RETURN_IF_ERROR(CheckLaunch("BatchPlanTotalsKernel", stream_));
    SOLVERD_RETURN_IF_ERROR(RowTotals(row_values_, costs));
    return RowTotals(row_values2_, plogps);
  }

  // For a problem whose stage ended before its first update (no iterations
  // allowed, or stopped at once), the row error it measured leaves the
  // columns out: the whole error from its plan, in one download (rare).
  Status MeasureWholeError(int64_t k) {
    Track& t = tracks_[k];
    std::vector<double> plan;
    SOLVERD_RETURN_IF_ERROR(CopyPlan(k, &plan));
    std::vector<double> rows(n_, 0.0), columns(m_, 0.0);
    for (int64_t i = 0; i < n_; ++i) {
      for (int64_t j = 0; j < m_; ++j) {
        rows[i] += plan[i * m_ + j];
        columns[j] += plan[i * m_ + j];
      }
    }
    t.state.error = MarginalError(*t.item->problem, rows, columns);
    t.state.error_current = true;
    CheckLimits(t.item->options, t.item->cancel, &t.state);
    return Status::Ok();
  }

  Status CopyPlan(int64_t k, std::vector<double>* plan) {
    DeviceBuffer<double> dense;
    SOLVERD_RETURN_IF_ERROR(dense.Allocate(n_ * m_));
    PlanKernel<<<BlocksFor(n_ * m_, Tuning::kElementwiseThreads), Tuning::kElementwiseThreads, 0,
                 stream_>>>(cost_.data() + k * n_ * m_, x_.data() + k * n_, y_.data() + k * m_,
                            n_, m_, tracks_[k].item->problem->eta, dense.data());
    SOLVERD_RETURN_IF_ERROR(CheckLaunch("PlanKernel", stream_));
    plan->resize(n_ * m_);
    return dense.Download(plan->data(), stream_);
  }

  const Device device_;
  const int64_t n_, m_, count_, chunks_;
  cudaStream_t stream_;
  std::deque<Track> tracks_;
  std::vector<uint8_t> active_host_;
  DeviceBuffer<double> cost_, a_, b_, eta_, x_, y_, lse_, row_values_, row_values2_, totals_;
  DeviceBuffer<LogSumExp> partial_;
  DeviceBuffer<uint8_t> active_;
  // Per problem, this iteration's Relaxation; per problem and column, the
  // error its last column update left (counted once any relaxed).
  std::vector<Relaxation> relaxation_host_;
  DeviceBuffer<Relaxation> relaxation_;
  DeviceBuffer<double> column_error_;
  bool any_relaxed_ = false;
};

}  // namespace

Status SinkhornBatchCuda(const Device& device, StreamHandle stream,
                         const std::vector<BatchItem*>& group) {
  SOLVERD_CUDA_RETURN_IF_ERROR(cudaSetDevice(device.index));
  CudaSinkhornBatch batch(device, group, static_cast<cudaStream_t>(stream));
  SOLVERD_RETURN_IF_ERROR(batch.Init());
  SOLVERD_RETURN_IF_ERROR(batch.Run());
  return batch.Finish();
}

}  // namespace solverd::ot::internal
