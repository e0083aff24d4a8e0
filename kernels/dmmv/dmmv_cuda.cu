// The CUDA DmmvBackend for a dense X: X (as columns), every instance's
// weights and residual live on the device; each Score() is one launch over
// all the moves of all instances (a block per move), each Apply() one
// launch over all of them.
#include <memory>

#include "dmmv/dmmv_cuda_backend.cuh"
#include "dmmv/dmmv_kernels.cuh"

namespace solverd::dmmv::internal {
namespace {

class CudaBackend final : public CudaBackendBase {
 public:
  CudaBackend(cudaStream_t stream, const Problem& problem) : CudaBackendBase(stream, problem) {}

  Status Init(const Problem& problem) {
    std::vector<double> columns(static_cast<size_t>(rows_ * cols_));
    for (int64_t k = 0; k < rows_; ++k) {
      for (int64_t j = 0; j < cols_; ++j) columns[j * rows_ + k] = problem.x[k * cols_ + j];
    }
    SOLVERD_RETURN_IF_ERROR(columns_.Upload(columns.data(), columns.size(), stream_));
    std::vector<double> weights;
    return UploadInstances(problem, &weights);  // synchronizes: `columns` dies after
  }

 private:
  const char* LaunchResidual(int64_t offset) override {
    ResidualKernel<<<BlocksFor(rows_, kRowThreads), kRowThreads, 0, stream_>>>(
        columns_.data(), rows_, cols_, values_.data(), b_.data() + offset,
        residual_.data() + offset);
    return "ResidualKernel";
  }

  const char* LaunchScore(int64_t count) override {
    ScoreKernel<<<static_cast<unsigned>(count), kScoreThreads, 0, stream_>>>(
        columns_.data(), residual_.data(), weights_.data(), rows_, moves_.data(), scores_.data());
    return "ScoreKernel";
  }

  const char* LaunchApply(int64_t segments) override {
    const dim3 grid(BlocksFor(rows_, kRowThreads), static_cast<unsigned>(segments));
    ApplyKernel<<<grid, kRowThreads, 0, stream_>>>(columns_.data(), residual_.data(), rows_,
                                                   moves_.data(), segments_.data());
    return "ApplyKernel";
  }

  DeviceBuffer<double> columns_;
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
