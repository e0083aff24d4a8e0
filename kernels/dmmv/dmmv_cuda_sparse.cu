// The CUDA DmmvBackend for a sparse X: X by rows and by columns, every
// instance's weights and residual on the device; one launch scores all the
// moves of a round. Each instance's worst rows and total sum of squares are
// found on the host (TopRows, SumSquares: the CPU backend's code) from a
// copy of its residual, once per change of residual.
#include <memory>

#include "dmmv/dmmv_cuda_backend.cuh"
#include "dmmv/dmmv_sparse_kernels.cuh"

namespace solverd::dmmv::internal {
namespace {

class SparseCudaBackend final : public CudaBackendBase {
 public:
  SparseCudaBackend(cudaStream_t stream, const Problem& problem, const CscMatrix& columns)
      : CudaBackendBase(stream, problem), top_count_(TopRowCount(problem.rows, columns)),
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
    SOLVERD_RETURN_IF_ERROR(top_.Allocate(static_cast<size_t>(instances_ * top_count_)));
    SOLVERD_RETURN_IF_ERROR(totals_.Allocate(static_cast<size_t>(instances_)));
    host_totals_.assign(static_cast<size_t>(instances_), 0.0);
    return UploadInstances(problem, &host_weights_);
  }

 private:
  DeviceSparseX X() const {
    return {row_offsets_.data(), row_columns_.data(), row_values_.data(),
            col_offsets_.data(), col_rows_.data(),    col_values_.data()};
  }

  const char* LaunchResidual(int64_t offset) override {
    SparseResidualKernel<<<BlocksFor(rows_, kSparseThreads), kSparseThreads, 0, stream_>>>(
        X(), rows_, values_.data(), b_.data() + offset, residual_.data() + offset);
    return "SparseResidualKernel";
  }

  const char* LaunchScore(int64_t count) override {
    SparseScoreKernel<<<BlocksFor(count, kSparseThreads), kSparseThreads, 0, stream_>>>(
        X(), residual_.data(), weights_.data(), rows_, top_.data(), top_count_, totals_.data(),
        moves_.data(), count, scores_.data());
    return "SparseScoreKernel";
  }

  const char* LaunchApply(int64_t segments) override {
    SparseApplyKernel<<<BlocksFor(segments, kSparseThreads), kSparseThreads, 0, stream_>>>(
        X(), residual_.data(), rows_, moves_.data(), segments_.data(), segments);
    return "SparseApplyKernel";
  }

  Status PrepareScore(const std::vector<Move>& moves) override {
    for (const Move& m : moves) SOLVERD_RETURN_IF_ERROR(Refresh(m.instance));
    return Status::Ok();
  }

  void ResidualChanged(int instance) override { stale_[instance] = true; }

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

  const int64_t top_count_, instances_;
  DeviceBuffer<int64_t> row_offsets_, col_offsets_;
  DeviceBuffer<int32_t> row_columns_, col_rows_, top_;
  DeviceBuffer<double> row_values_, col_values_, totals_;
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
