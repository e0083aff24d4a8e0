// CostFromPointsCuda: entry by entry, or a GEMM and the squared norms.
#include "ot/point_cost_cuda.h"

#include <cublas_api.h>
#include <dlfcn.h>

#include <string>
#include <unordered_map>
#include <vector>

#include "common/cuda_check.h"
#include "common/device_buffer.cuh"
#include "ot/sinkhorn_math.h"
#include "ot/sinkhorn_tuning.h"

namespace solverd::ot::internal {
namespace {

using ::solverd::internal::CheckLaunch;

constexpr int kThreads = SinkhornTuning::kElementwiseThreads;

unsigned Blocks(long items) { return static_cast<unsigned>((items + kThreads - 1) / kThreads); }

__global__ void __launch_bounds__(kThreads)
PointCostKernel(const double* xs, const double* ys, long n, long m, long dim, int p,
                double* cost) {
  const long k = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (k >= n * m) return;
  const long i = k / m, j = k % m;
  cost[k] = PointCost(xs + i * dim, ys + j * dim, dim, p);
}

// norms[i] = ||points_i||^2 for `count` points.
__global__ void __launch_bounds__(kThreads)
SquaredNormsKernel(const double* points, long count, long dim, double* norms) {
  const long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (i >= count) return;
  double s = 0;
  for (long k = 0; k < dim; ++k) s += points[i * dim + k] * points[i * dim + k];
  norms[i] = s;
}

// cost_ij = max(0, ||x_i||^2 + ||y_j||^2 + cost_ij), cost holding -2 x_i . y_j.
__global__ void __launch_bounds__(kThreads)
AddSquaredNormsKernel(const double* x_norms, const double* y_norms, long n, long m,
                      double* cost) {
  const long k = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (k >= n * m) return;
  cost[k] = fmax(0.0, x_norms[k / m] + y_norms[k % m] + cost[k]);
}

Status CublasStatus(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return Status::Ok();
  const std::string message = std::string(what) + ": cuBLAS status " +
                              std::to_string(static_cast<int>(status));
  return status == CUBLAS_STATUS_ALLOC_FAILED ? ResourceExhausted(message) : Internal(message);
}

// The few cuBLAS calls used here, found at run time. Linked in, cuBLAS's
// thread-local storage is carved out of every thread's stack at start-up
// and overflows the 100 KiB stacks the metrics server gives its threads
// (pthread_create fails, and with it the server's start); loaded with
// dlopen, it lives in dynamic TLS instead (as LAPACK in gptq_hessian.cc).
struct Cublas {
  cublasStatus_t (*create)(cublasHandle_t*) = nullptr;
  cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t) = nullptr;
  cublasStatus_t (*dgemm)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                          const double*, const double*, int, const double*, int, const double*,
                          double*, int) = nullptr;
};

template <typename Fn>
bool Find(void* library, const char* name, Fn* fn) {
  *fn = reinterpret_cast<Fn>(dlsym(library, name));
  return *fn != nullptr;
}

// The cuBLAS of the CUDA major version built against, or null.
const Cublas* LoadedCublas() {
  static const Cublas* const kCublas = []() -> const Cublas* {
    const std::string versioned = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
    for (const char* name : {versioned.c_str(), "libcublas.so"}) {
      void* library = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (library == nullptr) continue;
      Cublas found;
      if (Find(library, "cublasCreate_v2", &found.create) &&
          Find(library, "cublasSetStream_v2", &found.set_stream) &&
          Find(library, "cublasDgemm_v2", &found.dgemm)) {
        return new Cublas(found);
      }
      dlclose(library);
    }
    return nullptr;
  }();
  return kCublas;
}

// The calling thread's cuBLAS handle for the current device, on `stream`.
// Created once per thread and device and never destroyed (the lanes'
// threads live as long as the server): cublasCreate sets up a context and
// workspace on the device, which a batch of small high-dimensional
// problems would otherwise pay once a problem.
Status ThreadHandle(const Cublas& cublas, cudaStream_t stream, cublasHandle_t* handle) {
  thread_local std::unordered_map<int, cublasHandle_t> handles;
  int device = 0;
  SOLVERD_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  cublasHandle_t& h = handles[device];
  if (h == nullptr) {
    const Status created = CublasStatus(cublas.create(&h), "cublasCreate");
    if (!created.ok()) {
      handles.erase(device);
      return created;
    }
  }
  *handle = h;
  return CublasStatus(cublas.set_stream(h, stream), "cublasSetStream");
}

// Both clouds less their common mean, for a smaller ||x||^2 + ||y||^2
// against which -2 x . y rounds.
void CenterClouds(const Problem& p, std::vector<double>* xs, std::vector<double>* ys) {
  std::vector<double> mean(p.dim, 0.0);
  for (int64_t k = 0; k < p.n * p.dim; ++k) mean[k % p.dim] += p.x_points[k];
  for (int64_t k = 0; k < p.m * p.dim; ++k) mean[k % p.dim] += p.y_points[k];
  for (double& v : mean) v /= static_cast<double>(p.n + p.m);
  xs->resize(p.n * p.dim);
  ys->resize(p.m * p.dim);
  for (int64_t k = 0; k < p.n * p.dim; ++k) (*xs)[k] = p.x_points[k] - mean[k % p.dim];
  for (int64_t k = 0; k < p.m * p.dim; ++k) (*ys)[k] = p.y_points[k] - mean[k % p.dim];
}

Status SquaredDistancesByGemm(const Cublas& cublas, const Problem& p, cudaStream_t stream,
                              const double* xs, const double* ys, double* cost) {
  DeviceBuffer<double> x_norms, y_norms;
  SOLVERD_RETURN_IF_ERROR(x_norms.Allocate(p.n));
  SOLVERD_RETURN_IF_ERROR(y_norms.Allocate(p.m));
  SquaredNormsKernel<<<Blocks(p.n), kThreads, 0, stream>>>(xs, p.n, p.dim, x_norms.data());
  SquaredNormsKernel<<<Blocks(p.m), kThreads, 0, stream>>>(ys, p.m, p.dim, y_norms.data());
  SOLVERD_RETURN_IF_ERROR(CheckLaunch("SquaredNormsKernel", stream));
  cublasHandle_t handle = nullptr;
  SOLVERD_RETURN_IF_ERROR(ThreadHandle(cublas, stream, &handle));
  // Row-major C (n x m) is column-major C^T (m x n) = Y X^T, with the
  // row-major point arrays read as column-major dim x m (dim x n) matrices.
  const double minus_two = -2, zero = 0;
  SOLVERD_RETURN_IF_ERROR(CublasStatus(
      cublas.dgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(p.m),
                  static_cast<int>(p.n), static_cast<int>(p.dim), &minus_two, ys,
                  static_cast<int>(p.dim), xs, static_cast<int>(p.dim), &zero, cost,
                  static_cast<int>(p.m)),
      "cublasDgemm"));
  AddSquaredNormsKernel<<<Blocks(p.n * p.m), kThreads, 0, stream>>>(
      x_norms.data(), y_norms.data(), p.n, p.m, cost);
  return CheckLaunch("AddSquaredNormsKernel", stream);
}

}  // namespace

Status CostFromPointsCuda(const Problem& problem, cudaStream_t stream, double* cost,
                          PointCostRoute route) {
  const Cublas* cublas = problem.cost_power == 2 && route != PointCostRoute::kPerEntry
                             ? LoadedCublas()
                             : nullptr;
  if (route == PointCostRoute::kGemm && cublas == nullptr) {
    return FailedPrecondition("the GEMM route needs p = 2 and cuBLAS (libcublas.so." +
                              std::to_string(CUBLAS_VER_MAJOR) + "), which did not load");
  }
  // Without cuBLAS, entry by entry: the same C.
  const bool gemm = cublas != nullptr &&
                    (route == PointCostRoute::kGemm || problem.dim >= kGemmMinDim);
  std::vector<double> centered_x, centered_y;
  if (gemm) CenterClouds(problem, &centered_x, &centered_y);
  const std::vector<double>& host_x = gemm ? centered_x : problem.x_points;
  const std::vector<double>& host_y = gemm ? centered_y : problem.y_points;
  DeviceBuffer<double> xs, ys;
  SOLVERD_RETURN_IF_ERROR(xs.Upload(host_x.data(), host_x.size(), stream));
  SOLVERD_RETURN_IF_ERROR(ys.Upload(host_y.data(), host_y.size(), stream));
  if (gemm) return SquaredDistancesByGemm(*cublas, problem, stream, xs.data(), ys.data(), cost);
  PointCostKernel<<<Blocks(problem.n * problem.m), kThreads, 0, stream>>>(
      xs.data(), ys.data(), problem.n, problem.m, problem.dim, problem.cost_power, cost);
  // xs/ys are freed on return; cudaFree waits for the kernel using them.
  return CheckLaunch("PointCostKernel", stream);
}

}  // namespace solverd::ot::internal
