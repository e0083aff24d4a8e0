// The CUDA DmmvBackend: X (as columns), every instance's weights and
// residual live on the device; each Score() is one launch over all the
// moves of all instances, each Apply() one launch over all of them.
#include <algorithm>
#include <numeric>

#include "common/device_buffer.cuh"
#include "dmmv/dmmv_kernels.cuh"

namespace solverd::dmmv::internal {
namespace {

class CudaBackend final : public DmmvBackend {
 public:
  CudaBackend(cudaStream_t stream, const Problem& problem)
      : stream_(stream), rows_(problem.rows), cols_(problem.cols) {}

  Status Init(const Problem& problem) {
    std::vector<double> columns(static_cast<size_t>(rows_ * cols_));
    for (int64_t k = 0; k < rows_; ++k) {
      for (int64_t j = 0; j < cols_; ++j) columns[j * rows_ + k] = problem.x[k * cols_ + j];
    }
    SOLVERD_RETURN_IF_ERROR(columns_.Upload(columns.data(), columns.size(), stream_));
    std::vector<double> b, w;
    for (const Instance& inst : problem.instances) {
      b.insert(b.end(), inst.b.begin(), inst.b.end());
      if (inst.weights.empty()) {
        w.insert(w.end(), rows_, 1.0);
      } else {
        w.insert(w.end(), inst.weights.begin(), inst.weights.end());
      }
    }
    SOLVERD_RETURN_IF_ERROR(b_.Upload(b.data(), b.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(weights_.Upload(w.data(), w.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(residual_.Allocate(b.size()));
    SOLVERD_RETURN_IF_ERROR(values_.Allocate(static_cast<size_t>(cols_)));
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));  // host vectors die here
    return Status::Ok();
  }

  Status SetValues(int instance, const std::vector<double>& values) override {
    SOLVERD_RETURN_IF_ERROR(values_.UploadReserved(values.data(), values.size(), stream_));
    const int64_t offset = instance * rows_;
    ResidualKernel<<<BlocksFor(rows_, kRowThreads), kRowThreads, 0, stream_>>>(
        columns_.data(), rows_, cols_, values_.data(), b_.data() + offset,
        residual_.data() + offset);
    SOLVERD_RETURN_IF_ERROR(solverd::internal::CheckLaunch("ResidualKernel", stream_));
    // `values` is the caller's: wait before it can go away.
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return Status::Ok();
  }

  Status Residual(int instance, std::vector<double>* d) override {
    d->resize(static_cast<size_t>(rows_));
    return residual_.DownloadRange(instance * rows_, rows_, d->data(), stream_);
  }

  // Scores every move exactly (the cutoff is for backends that can stop early).
  Status Score(const std::vector<Move>& moves, const std::vector<double>&,
               std::vector<MoveScore>* scores) override {
    scores->resize(moves.size());
    if (moves.empty()) return Status::Ok();
    SOLVERD_RETURN_IF_ERROR(UploadMoves(moves));
    SOLVERD_RETURN_IF_ERROR(scores_.Reserve(moves.size()));
    ScoreKernel<<<static_cast<unsigned>(moves.size()), kScoreThreads, 0, stream_>>>(
        columns_.data(), residual_.data(), weights_.data(), rows_, moves_.data(), scores_.data());
    SOLVERD_RETURN_IF_ERROR(solverd::internal::CheckLaunch("ScoreKernel", stream_));
    return scores_.DownloadRange(0, moves.size(), scores->data(), stream_);
  }

  Status Apply(const std::vector<Move>& moves) override {
    if (moves.empty()) return Status::Ok();
    std::vector<Move> sorted;
    std::vector<int32_t> first;
    GroupByInstance(moves, &sorted, &first);
    SOLVERD_RETURN_IF_ERROR(UploadMoves(sorted));
    SOLVERD_RETURN_IF_ERROR(segments_.UploadReserved(first.data(), first.size(), stream_));
    const dim3 grid(BlocksFor(rows_, kRowThreads), static_cast<unsigned>(first.size() - 1));
    ApplyKernel<<<grid, kRowThreads, 0, stream_>>>(columns_.data(), residual_.data(), rows_,
                                                   moves_.data(), segments_.data());
    SOLVERD_RETURN_IF_ERROR(solverd::internal::CheckLaunch("ApplyKernel", stream_));
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));  // `sorted`, `first` die here
    return Status::Ok();
  }

 private:
  Status UploadMoves(const std::vector<Move>& moves) {
    return moves_.UploadReserved(moves.data(), moves.size(), stream_);
  }

  cudaStream_t stream_;
  const int64_t rows_, cols_;
  DeviceBuffer<double> columns_, b_, weights_, residual_, values_;
  DeviceBuffer<Move> moves_;
  DeviceBuffer<MoveScore> scores_;
  DeviceBuffer<int32_t> segments_;
};

}  // namespace

Status MakeCudaBackend(const Device& device, StreamHandle stream, const Problem& problem,
                       std::unique_ptr<DmmvBackend>* backend) {
  SOLVERD_CUDA_RETURN_IF_ERROR(cudaSetDevice(device.index));
  auto cuda = std::make_unique<CudaBackend>(static_cast<cudaStream_t>(stream), problem);
  SOLVERD_RETURN_IF_ERROR(cuda->Init(problem));
  *backend = std::move(cuda);
  return Status::Ok();
}

}  // namespace solverd::dmmv::internal
