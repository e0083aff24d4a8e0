// sor_gpu_bench: the GPU half of the sor benchmark, for a lent GPU machine
// (built with kernels/ alone; scripts/gpu-check.sh runs it). Prints one
// JSON object in the bench format of DESIGN.md:
//  - achieved bandwidth of a multicolour SOR sweep and of the CSR SpMV on
//    a 1M-unknown 5-point grid, against device-to-device copy bandwidth;
//  - SSOR-CG and SOR solves of that grid on CUDA against the CPU backend
//    (iterations must agree; seconds side by side).
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "../common/gpu_bench_util.h"
#include "sor/sor.h"
#include "sor/sor_backend.h"
#include "throughput.h"

namespace {

namespace sor = solverd::sor;
using solverd::Device;

solverd::bench::BenchRecords records;

double Seconds(const std::chrono::steady_clock::time_point& start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Times `reps` calls of `op` on the backend; a Dot at the end waits for
// the stream.
template <typename Op>
double TimeOnDevice(sor::internal::SorBackend& be, int reps, Op op) {
  sor::internal::Scalars sync;
  op();
  (void)be.Dot(sor::internal::kX, sor::internal::kX, &sync);
  const auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) op();
  (void)be.Dot(sor::internal::kX, sor::internal::kX, &sync);
  return Seconds(start) / reps;
}

void Bandwidth(const std::string& name, const sor::CsrMatrix& a, const sor::SweepOrder& order,
               double copy) {
  std::unique_ptr<sor::internal::SorBackend> be;
  solverd::Status s = sor::internal::MakeCudaBackend(Device::Cuda(0), nullptr, {&a}, order, &be);
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return;
  }
  (void)be->Upload(sor::internal::kB, 0, std::vector<double>(a.n, 1.0));
  (void)be->Zero(sor::internal::kX);
  const double sweep = TimeOnDevice(*be, 50, [&] {
    (void)be->Sweep(sor::internal::kX, sor::internal::kB, {1.5}, true);
  });
  const double spmv = TimeOnDevice(*be, 50, [&] {
    (void)be->Multiply(sor::internal::kX, sor::internal::kQ);
  });
  records.Add(name, "sweep", "cuda", "bytes_per_second", solverd::bench::SweepBytes(a) / sweep);
  records.Add(name, "spmv", "cuda", "bytes_per_second", solverd::bench::SpmvBytes(a) / spmv);
  records.Add(name, "sweep", "cuda", "fraction_of_copy", solverd::bench::SweepBytes(a) / sweep / copy);
  records.Add(name, "spmv", "cuda", "fraction_of_copy", solverd::bench::SpmvBytes(a) / spmv / copy);
}

void Compare(const std::string& name, const sor::CsrMatrix& a, const sor::SweepOrder& order,
             sor::Method method, const char* system) {
  const std::vector<double> b(a.n, 1.0);
  sor::Options o;
  o.method = method;
  o.omega = 1.9;
  o.max_iterations = 20000;
  o.threads = static_cast<int>(std::thread::hardware_concurrency());
  for (bool cuda : {true, false}) {
    solverd::StreamHandle stream = nullptr;
    if (cuda && !solverd::CreateStream(0, &stream).ok()) return;
    sor::Result r;
    const auto start = std::chrono::steady_clock::now();
    solverd::Status s = sor::Solve(cuda ? Device::Cuda(0) : Device::Cpu(), stream, a, order, b, {},
                                   o, nullptr, nullptr, &r);
    const double seconds = Seconds(start);
    if (stream != nullptr) solverd::DestroyStream(stream);
    if (!s.ok()) std::fprintf(stderr, "%s: %s\n", system, s.ToString().c_str());
    const char* backend = cuda ? "cuda" : "cpu";
    records.Add(name, system, backend, "seconds", s.ok() ? seconds : -1);
    records.Add(name, system, backend, "iterations", static_cast<double>(r.iterations));
    records.Add(name, system, backend, "relative_residual", r.relative_residual);
  }
}

// A batch of kMaxBatch small systems with one pattern (the synthetic
// sequence's shape: 5-point Laplacian plus a shift per system), solved as
// one batched launch and one system at a time, on both backends.
void Batched(const std::string& name, int nx) {
  std::vector<sor::CsrMatrix> matrices;
  for (int s = 0; s < sor::kMaxBatch; ++s) {
    matrices.push_back(sor::Laplacian2d(nx, nx, 0.01 * (s % 8)));
  }
  const sor::SweepOrder order = sor::MulticolorOrder(matrices[0]);
  const std::vector<double> b(matrices[0].n, 1.0);
  const std::vector<double> x0;
  std::vector<sor::BatchSystem> batch;
  for (const sor::CsrMatrix& m : matrices) batch.push_back({&m, &b, &x0, 1.5});
  sor::Options o;
  o.method = sor::Method::kSor;
  o.omega = 1.5;  // the batch's omega, for the one-by-one solves
  o.max_iterations = 20000;
  o.threads = static_cast<int>(std::thread::hardware_concurrency());
  for (bool cuda : {true, false}) {
    const Device device = cuda ? Device::Cuda(0) : Device::Cpu();
    const char* backend = cuda ? "cuda" : "cpu";
    solverd::StreamHandle stream = nullptr;
    if (cuda && !solverd::CreateStream(0, &stream).ok()) return;
    std::vector<sor::Result> results;
    std::vector<solverd::Status> statuses;
    auto start = std::chrono::steady_clock::now();
    solverd::Status s = sor::SolveBatch(device, stream, batch, order, o, nullptr, nullptr,
                                        &results, &statuses);
    const double batched = Seconds(start);
    int64_t iterations = 0;
    for (const sor::Result& r : results) iterations += r.iterations;
    start = std::chrono::steady_clock::now();
    int64_t single_iterations = 0;
    for (const sor::CsrMatrix& m : matrices) {
      sor::Result r;
      if (s.ok()) s = sor::Solve(device, stream, m, order, b, x0, o, nullptr, nullptr, &r);
      single_iterations += r.iterations;
    }
    const double one_by_one = Seconds(start);
    if (stream != nullptr) solverd::DestroyStream(stream);
    if (!s.ok()) std::fprintf(stderr, "%s: %s\n", name.c_str(), s.ToString().c_str());
    records.Add(name, "sor-batched", backend, "seconds", s.ok() ? batched : -1);
    records.Add(name, "sor-batched", backend, "iterations", static_cast<double>(iterations));
    records.Add(name, "sor-one-by-one", backend, "seconds", s.ok() ? one_by_one : -1);
    records.Add(name, "sor-one-by-one", backend, "iterations",
                static_cast<double>(single_iterations));
  }
}

}  // namespace

int main() {
  if (solverd::CudaDeviceCount() == 0) {
    std::fprintf(stderr, "sor_gpu_bench: no CUDA device\n");
    return 1;
  }
  const sor::CsrMatrix a = sor::Laplacian2d(1000, 1000, 0.01);  // ~60 MB of CSR
  const sor::SweepOrder order = sor::MulticolorOrder(a);
  const double copy = solverd::bench::CopyBandwidth(size_t{256} << 20);
  records.Add("throughput_nx1000", "cudaMemcpy-d2d", "cuda", "bytes_per_second", copy);
  Bandwidth("throughput_nx1000", a, order, copy);
  const sor::CsrMatrix small = sor::Laplacian2d(300, 300, 0.01);
  const sor::SweepOrder small_order = sor::MulticolorOrder(small);
  Compare("poisson_nx300", small, small_order, sor::Method::kSsorCg, "ssor-cg-omega1.9");
  Compare("poisson_nx300", small, small_order, sor::Method::kSor, "sor-omega1.9");
  Batched("batch64_nx10", 10);
  Batched("batch64_nx100", 100);
  records.Print("sor", solverd::CudaDeviceName(0));
  return 0;
}
