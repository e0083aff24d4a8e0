// ot_gpu_bench: the GPU half of the ot benchmark, for a lent GPU machine
// (built with kernels/ alone; scripts/gpu-check.sh runs it). Prints one
// JSON object with records in the bench format of DESIGN.md:
//  - achieved bandwidth of Sinkhorn half-steps (bytes of C read per second)
//    against the device's device-to-device copy bandwidth;
//  - Sinkhorn and SNS on CUDA against the CPU backend on random assignment
//    (n = 500, eta = 1200) and random point clouds (n = 5000, eta = 100);
//    SNS against the CUDA Sinkhorn on random assignment at n = 5000 and
//    10000, with the share of SNS's Newton time spent in CG (cg_share);
//  - the cost from 8192 x 8192 points in 2, 16 and 64 dimensions by the
//    per-entry kernel and by the GEMM route (point_cost_cuda.h), for
//    kGemmMinDim;
//  - 1,000 problems of n = 64 (point clouds, eta = 20, default options, as
//    bench/service's load generator sends them): problems per second solved
//    by SolveBatch on CUDA, one by one on CUDA, and one by one on the CPU.
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "../common/gpu_bench_util.h"
#include "common/device_buffer.cuh"
#include "ot/batch.h"
#include "ot/ot.h"
#include "ot/point_cost_cuda.h"

namespace {

using solverd::Device;
namespace ot = solverd::ot;

solverd::bench::BenchRecords records;

void Record(const std::string& c, const std::string& system, const std::string& backend,
            const std::string& metric, double value) {
  records.Add(c, system, backend, metric, value);
}

ot::Problem RandomAssignment(int n, double eta) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> u(0, 1);
  ot::Problem p;
  p.n = p.m = n;
  for (long e = 0; e < static_cast<long>(n) * n; ++e) p.cost.push_back(u(rng));
  p.a.assign(n, 1.0 / n);
  p.b.assign(n, 1.0 / n);
  p.eta = eta;
  return p;
}

ot::Problem PointClouds(int n, double eta, unsigned seed = 2, int dim = 2) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  ot::Problem p;
  p.n = p.m = n;
  p.dim = dim;
  for (long k = 0; k < static_cast<long>(n) * dim; ++k) p.x_points.push_back(u(rng));
  for (long k = 0; k < static_cast<long>(n) * dim; ++k) p.y_points.push_back(u(rng));
  p.a.assign(n, 1.0 / n);
  p.b.assign(n, 1.0 / n);
  p.eta = eta;
  return p;
}

double Timed(const Device& device, const ot::Problem& p, const ot::Options& o, ot::Result* r) {
  const auto start = std::chrono::steady_clock::now();
  solverd::Status s = ot::Solve(device, nullptr, p, o, nullptr, nullptr, r);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!s.ok()) std::fprintf(stderr, "%s\n", s.ToString().c_str());
  return s.ok() ? seconds : -1;
}

void Compare(const std::string& name, const ot::Problem& p, double tolerance, bool with_cpu,
             double time_limit = 0) {
  for (auto [method, system] : {std::pair{ot::Method::kSinkhorn, "solverd-sinkhorn"},
                                std::pair{ot::Method::kSns, "solverd-sns"}}) {
    ot::Options o;
    o.method = method;
    o.tolerance = tolerance;
    o.max_iterations = 1000000;
    o.threads = 16;
    o.time_limit_seconds = time_limit;
    for (bool cuda : {true, false}) {
      if (!cuda && !with_cpu) continue;
      ot::Result r;
      double seconds = Timed(cuda ? Device::Cuda(0) : Device::Cpu(), p, o, &r);
      const char* backend = cuda ? "cuda" : "cpu";
      Record(name, system, backend, "seconds", seconds);
      Record(name, system, backend, "iterations", static_cast<double>(r.iterations));
      Record(name, system, backend, "marginal_error", r.marginal_error);
      Record(name, system, backend, "cost", r.transport_cost);
      if (r.newton_seconds > 0) {
        Record(name, system, backend, "cg_share", r.cg_seconds / r.newton_seconds);
      }
    }
  }
}

void Batched(int count, int n) {
  std::vector<ot::Problem> problems;
  for (int k = 0; k < count; ++k) problems.push_back(PointClouds(n, 20, 100 + k));
  const std::string name = "batched_n" + std::to_string(n);
  solverd::StreamHandle stream = nullptr;
  if (!solverd::CreateStream(0, &stream).ok()) return;
  for (const char* way : {"batched", "one-by-one"}) {
    for (bool cuda : {true, false}) {
      if (!cuda && std::string(way) == "batched") continue;
      std::vector<ot::BatchItem> items(count);
      for (int k = 0; k < count; ++k) items[k].problem = &problems[k];
      const Device device = cuda ? Device::Cuda(0) : Device::Cpu();
      const auto start = std::chrono::steady_clock::now();
      if (std::string(way) == "batched") {
        if (!ot::SolveBatch(device, stream, &items).ok()) return;
      } else {
        for (ot::BatchItem& item : items) {
          item.status = ot::Solve(device, stream, *item.problem, item.options, nullptr,
                                  nullptr, &item.result);
        }
      }
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      int64_t iterations = 0, batched = 0, failed = 0;
      for (const ot::BatchItem& item : items) {
        iterations += item.result.iterations;
        batched += item.batched;
        failed += !item.status.ok();
      }
      const std::string system = std::string("solverd-") + way;
      const char* backend = cuda ? "cuda" : "cpu";
      Record(name, system, backend, "problems_per_second", count / seconds);
      Record(name, system, backend, "mean_iterations", static_cast<double>(iterations) / count);
      Record(name, system, backend, "problems_batched", static_cast<double>(batched));
      Record(name, system, backend, "problems_failed", static_cast<double>(failed));
    }
  }
  solverd::DestroyStream(stream);
}

// Seconds for the cost of `n` x `n` points in `dim` dimensions by each
// route, the fastest of three after a warm-up.
void PointCost(int n, int dim) {
  const ot::Problem p = PointClouds(n, /*eta=*/1, /*seed=*/3, dim);
  solverd::DeviceBuffer<double> cost;
  if (!cost.Allocate(static_cast<size_t>(n) * n).ok()) return;
  const std::string name = "point_cost_n" + std::to_string(n) + "_d" + std::to_string(dim);
  for (auto [route, system] : {std::pair{ot::internal::PointCostRoute::kPerEntry, "per-entry"},
                               std::pair{ot::internal::PointCostRoute::kGemm, "gemm"}}) {
    double best = -1;
    for (int run = 0; run < 4; ++run) {
      const auto start = std::chrono::steady_clock::now();
      solverd::Status s = ot::internal::CostFromPointsCuda(p, nullptr, cost.data(), route);
      if (s.ok() && cudaDeviceSynchronize() != cudaSuccess) {
        s = solverd::Internal("cudaDeviceSynchronize failed");
      }
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (!s.ok()) {
        std::fprintf(stderr, "%s\n", s.ToString().c_str());
        return;
      }
      if (run > 0 && (best < 0 || seconds < best)) best = seconds;
    }
    Record(name, system, "cuda", "seconds", best);
  }
}

}  // namespace

int main() {
  if (solverd::CudaDeviceCount() == 0) {
    std::fprintf(stderr, "ot_gpu_bench: no CUDA device\n");
    return 1;
  }
  const int n = 8192;  // C is 512 MiB: far larger than any cache
  const double copy = solverd::bench::CopyBandwidth(static_cast<size_t>(n) * n * 8);
  Record("bandwidth_n8192", "cudaMemcpy-d2d", "cuda", "bytes_per_second", copy);
  ot::Problem big = PointClouds(n, 10);
  ot::Options o;
  o.method = ot::Method::kSinkhorn;
  o.tolerance = 0;
  o.check_every = 1000000;  // no host round trip inside the timed loop
  ot::Result r;
  // Two solves that differ only in iteration count: their time difference is
  // iterations alone, without the setup (allocation, cost build) and the
  // final plan totals that every solve pays once.
  const int short_run = 20, long_run = 120;
  o.max_iterations = 1;
  Timed(Device::Cuda(0), big, o, &r);  // warm-up
  o.max_iterations = short_run;
  const double short_seconds = Timed(Device::Cuda(0), big, o, &r);
  o.max_iterations = long_run;
  const double long_seconds = Timed(Device::Cuda(0), big, o, &r);
  // Each iteration reads C twice (row and column half-steps).
  const double bandwidth = 2.0 * (long_run - short_run) * n * static_cast<double>(n) * 8 /
                           (long_seconds - short_seconds);
  Record("bandwidth_n8192", "solverd-sinkhorn-halfstep", "cuda", "bytes_per_second", bandwidth);
  Record("bandwidth_n8192", "solverd-sinkhorn-halfstep", "cuda", "fraction_of_copy",
         bandwidth / copy);

  Compare("random_assignment_n500", RandomAssignment(500, 1200), 1e-9, true);
  Compare("pot_n5000", PointClouds(5000, 100), 1e-6, true);
  Compare("random_assignment_n5000", RandomAssignment(5000, 1200), 1e-6, false, 30);
  Compare("random_assignment_n10000", RandomAssignment(10000, 1200), 1e-6, false, 30);
  for (int dim : {2, 16, 64}) PointCost(8192, dim);
  Batched(1000, 64);
  records.Print("ot", solverd::CudaDeviceName(0));
  return 0;
}
