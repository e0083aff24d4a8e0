// The CUDA DmmvBackend for a sparse X: X by rows and by columns, every
// instance's weights and residual on the device; one launch scores all the
// moves of a round. Each instance's worst rows and total sum of squares are
// found on the host (TopRows, SumSquares: the CPU backend's code) from a
// copy of its residual, once per change of residual.
#include <algorithm>

#include "common/device_buffer.cuh"
#include "dmmv/dmmv_sparse_kernels.cuh"

namespace solverd::dmmv::internal {
namespace {

class SparseCudaBackend final : public DmmvBackend {
 public:
  SparseCudaBackend(cudaStream_t stream, const Problem& problem, const CscMatrix& columns)
      : stream_(stream), rows_(problem.rows), top_count_(TopRowCount(problem.rows, columns)),
        instances_(static_cast<int64_t>(problem.instances.size())),
        stale_(problem.instances.size(), true) {}

  Status Init(const Problem& problem, const CscMatrix& columns) {
    const CsrMatrix& a = problem.x_csr;
    SOLVERD_RETURN_IF_ERROR(
        row_offsets_.Upload(a.row_offsets.data(), a.row_offsets.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(row_columns_.Upload(a.columns.data(), a.columns.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(row_values_.Upload(a.values.data(), a.values.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(
        col_offsets_.Upload(columns.col_offsets.data(), columns.col_offsets.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(col_rows_.Upload(columns.rows.data(), columns.rows.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(
        col_values_.Upload(columns.values.data(), columns.values.size(), stream_));
    std::vector<double> b;
    for (const Instance& inst : problem.instances) {
      b.insert(b.end(), inst.b.begin(), inst.b.end());
      if (inst.weights.empty()) {
        host_weights_.insert(host_weights_.end(), rows_, 1.0);
      } else {
        host_weights_.insert(host_weights_.end(), inst.weights.begin(), inst.weights.end());
      }
    }
    SOLVERD_RETURN_IF_ERROR(b_.Upload(b.data(), b.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(weights_.Upload(host_weights_.data(), host_weights_.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(residual_.Allocate(b.size()));
    SOLVERD_RETURN_IF_ERROR(values_.Allocate(static_cast<size_t>(problem.cols)));
    SOLVERD_RETURN_IF_ERROR(top_.Allocate(static_cast<size_t>(instances_ * top_count_)));
    SOLVERD_RETURN_IF_ERROR(totals_.Allocate(static_cast<size_t>(instances_)));
    host_totals_.assign(static_cast<size_t>(instances_), 0.0);
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));  // host vectors die here
    return Status::Ok();
  }

  Status SetValues(int instance, const std::vector<double>& values) override {
    SOLVERD_RETURN_IF_ERROR(values_.UploadReserved(values.data(), values.size(), stream_));
    const int64_t offset = instance * rows_;
    SparseResidualKernel<<<BlocksFor(rows_, kSparseThreads), kSparseThreads, 0, stream_>>>(
        X(), rows_, values_.data(), b_.data() + offset, residual_.data() + offset);
    SOLVERD_RETURN_IF_ERROR(solverd::internal::CheckLaunch("SparseResidualKernel", stream_));
    stale_[instance] = true;
    // `values` is the caller's: wait before it can go away.
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return Status::Ok();
  }

  Status Residual(int instance, std::vector<double>* d) override {
    d->resize(static_cast<size_t>(rows_));
    return residual_.DownloadRange(instance * rows_, rows_, d->data(), stream_);
  }

  Status Score(const std::vector<Move>& moves, const std::vector<double>&,
               std::vector<MoveScore>* scores) override {
    scores->resize(moves.size());
    if (moves.empty()) return Status::Ok();
    for (const Move& m : moves) SOLVERD_RETURN_IF_ERROR(Refresh(m.instance));
    SOLVERD_RETURN_IF_ERROR(moves_.UploadReserved(moves.data(), moves.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(scores_.Reserve(moves.size()));
    const auto count = static_cast<int64_t>(moves.size());
    SparseScoreKernel<<<BlocksFor(count, kSparseThreads), kSparseThreads, 0, stream_>>>(
        X(), residual_.data(), weights_.data(), rows_, top_.data(), top_count_, totals_.data(),
        moves_.data(), count, scores_.data());
    SOLVERD_RETURN_IF_ERROR(solverd::internal::CheckLaunch("SparseScoreKernel", stream_));
    return scores_.DownloadRange(0, moves.size(), scores->data(), stream_);
  }

  Status Apply(const std::vector<Move>& moves) override {
    if (moves.empty()) return Status::Ok();
    std::vector<Move> sorted;
    std::vector<int32_t> first;
    GroupByInstance(moves, &sorted, &first);
    SOLVERD_RETURN_IF_ERROR(moves_.UploadReserved(sorted.data(), sorted.size(), stream_));
    SOLVERD_RETURN_IF_ERROR(segments_.UploadReserved(first.data(), first.size(), stream_));
    const auto segments = static_cast<int64_t>(first.size() - 1);
    SparseApplyKernel<<<BlocksFor(segments, kSparseThreads), kSparseThreads, 0, stream_>>>(
        X(), residual_.data(), rows_, moves_.data(), segments_.data(), segments);
    SOLVERD_RETURN_IF_ERROR(solverd::internal::CheckLaunch("SparseApplyKernel", stream_));
    for (const Move& m : sorted) stale_[m.instance] = true;
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));  // `sorted`, `first` die here
    return Status::Ok();
  }

 private:
  DeviceSparseX X() const {
    return {row_offsets_.data(), row_columns_.data(), row_values_.data(),
            col_offsets_.data(), col_rows_.data(),    col_values_.data()};
  }

  // The instance's worst rows and sum of squares, from its current residual.
  Status Refresh(int instance) {
    if (!stale_[instance]) return Status::Ok();
    SOLVERD_RETURN_IF_ERROR(Residual(instance, &host_residual_));
    const double* w = host_weights_.data() + instance * rows_;
    TopRows(host_residual_.data(), w, rows_, top_count_, &host_top_);
    host_totals_[instance] = SumSquares(host_residual_.data(), w, rows_);
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(top_.data() + instance * top_count_,
                                                 host_top_.data(), top_count_ * sizeof(int32_t),
                                                 cudaMemcpyHostToDevice, stream_));
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(totals_.data() + instance,
                                                 &host_totals_[instance], sizeof(double),
                                                 cudaMemcpyHostToDevice, stream_));
    // host_top_ is reused by the next instance's refresh.
    SOLVERD_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    stale_[instance] = false;
    return Status::Ok();
  }

  cudaStream_t stream_;
  const int64_t rows_, top_count_, instances_;
  DeviceBuffer<int64_t> row_offsets_, col_offsets_;
  DeviceBuffer<int32_t> row_columns_, col_rows_, top_, segments_;
  DeviceBuffer<double> row_values_, col_values_, b_, weights_, residual_, values_, totals_;
  DeviceBuffer<Move> moves_;
  DeviceBuffer<MoveScore> scores_;
  std::vector<double> host_weights_, host_residual_, host_totals_;
  std::vector<int32_t> host_top_;
  std::vector<bool> stale_;
};

}  // namespace

Status MakeSparseCudaBackend(const Device& device, StreamHandle stream, const Problem& problem,
                             const CscMatrix& columns, std::unique_ptr<DmmvBackend>* backend) {
  SOLVERD_CUDA_RETURN_IF_ERROR(cudaSetDevice(device.index));
  auto cuda = std::make_unique<SparseCudaBackend>(static_cast<cudaStream_t>(stream), problem,
                                                  columns);
  SOLVERD_RETURN_IF_ERROR(cuda->Init(problem, columns));
  *backend = std::move(cuda);
  return Status::Ok();
}

}  // namespace solverd::dmmv::internal
