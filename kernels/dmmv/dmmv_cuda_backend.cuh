// CudaBackendBase: what the dense and sparse CUDA DmmvBackends share. It
// holds every instance's b, weights and residual on the device, the
// per-round move, score and segment buffers, and each operation's
// upload / launch / wait sequence; a subclass holds X and launches its own
// kernels. Not thread-safe.
#ifndef SOLVERD_KERNELS_DMMV_DMMV_CUDA_BACKEND_CUH_
#define SOLVERD_KERNELS_DMMV_DMMV_CUDA_BACKEND_CUH_

#include <vector>

#include "common/cuda_check.h"
#include "common/device_buffer.cuh"
#include "dmmv/dmmv_backend.h"

namespace solverd::dmmv::internal {

class CudaBackendBase : public DmmvBackend {
 public:
  Status SetValues(const std::vector<std::vector<double>>& values) final {
    for (size_t i = 0; i < values.size(); ++i) {
      const int instance = static_cast<int>(i);
      SOLVERD_RETURN_IF_ERROR(values_.UploadReserved(values[i].data(), values[i].size(), stream_));
      const char* kernel = LaunchResidual(instance * rows_);
      SOLVERD_RETURN_IF_ERROR(solverd::internal::CheckLaunch(kernel, stream_));
      ResidualChanged(instance);
      // values_ is reused by the next instance: wait for this one's kernel.
      SOLVERD_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    }
    return Status::Ok();
  }

  Status Residual(int instance, std::vector<double>* d) final {
    d->resize(static_cast<size_t>(rows_));
    return residual_.DownloadRange(instance * rows_, rows_, d->data(), stream_);
  }

  // Scores every move exactly (the cutoff is for backends that can stop early).
  Status Score(const std::vector<Move>& moves, const std::vector<double>&,
               std::vector<MoveScore>* scores) final {
    scores->resize(moves.size());
    if (moves.empty()) return Status::Ok();
    SOLVERD_RETURN_IF_ERROR(PrepareScore(moves));
    SOLVERD_RETURN_IF_ERROR(moves_.UploadReserved(moves.data(), moves.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(scores_.Reserve(moves.size()));
    const char* kernel = LaunchScore(static_cast<int64_t>(moves.size()));
    SOLVERD_RETURN_IF_ERROR(solverd::internal::CheckLaunch(kernel, stream_));
    return scores_.DownloadRange(0, moves.size(), scores->data(), stream_);
  }

  Status Apply(const std::vector<Move>& moves) final {
    if (moves.empty()) return Status::Ok();
    std::vector<Move> sorted;
    std::vector<int32_t> first;
    GroupByInstance(moves, &sorted, &first);
    SOLVERD_RETURN_IF_ERROR(moves_.UploadReserved(sorted.data(), sorted.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(segments_.UploadReserved(first.data(), first.size(), stream_));
    const char* kernel = LaunchApply(static_cast<int64_t>(first.size() - 1));
    SOLVERD_RETURN_IF_ERROR(solverd::internal::CheckLaunch(kernel, stream_));
    for (const Move& m : sorted) ResidualChanged(m.instance);
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));  // `sorted`, `first` die here
    return Status::Ok();
  }

 protected:
  CudaBackendBase(cudaStream_t stream, const Problem& problem)
      : stream_(stream), rows_(problem.rows), cols_(problem.cols) {}

  // Uploads every instance's b and weights (all 1 where none were given,
  // also returned in `weights`) and makes room for residuals and values.
  // The caller synchronizes before its host vectors go away.
  Status UploadInstances(const Problem& problem, std::vector<double>* weights) {
    std::vector<double> b;
    weights->clear();
    for (const Instance& inst : problem.instances) {
      b.insert(b.end(), inst.b.begin(), inst.b.end());
      if (inst.weights.empty()) {
        weights->insert(weights->end(), rows_, 1.0);
      } else {
        weights->insert(weights->end(), inst.weights.begin(), inst.weights.end());
      }
    }
    SOLVERD_RETURN_IF_ERROR(b_.Upload(b.data(), b.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(weights_.Upload(weights->data(), weights->size(), stream_));
    SOLVERD_RETURN_IF_ERROR(residual_.Allocate(b.size()));
    SOLVERD_RETURN_IF_ERROR(values_.Allocate(static_cast<size_t>(cols_)));
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));  // `b` dies here
    return Status::Ok();
  }

  // Each launches its kernel on stream_ and returns the kernel's name.
  // residual_[offset ..] = X values_ - b_[offset ..] for one instance.
  virtual const char* LaunchResidual(int64_t offset) = 0;
  // scores_[i] = the score of moves_[i], for `count` moves.
  virtual const char* LaunchScore(int64_t count) = 0;
  // Applies segment s's moves, moves_[segments_[s] .. segments_[s+1]), in order.
  virtual const char* LaunchApply(int64_t segments) = 0;
  // Before the moves are uploaded for scoring.
  virtual Status PrepareScore(const std::vector<Move>&) { return Status::Ok(); }
  virtual void ResidualChanged(int) {}

  cudaStream_t stream_;
  const int64_t rows_, cols_;
  DeviceBuffer<double> b_, weights_, residual_, values_;
  DeviceBuffer<Move> moves_;
  DeviceBuffer<MoveScore> scores_;
  DeviceBuffer<int32_t> segments_;
};

}  // namespace solverd::dmmv::internal

#endif  // SOLVERD_KERNELS_DMMV_DMMV_CUDA_BACKEND_CUH_
