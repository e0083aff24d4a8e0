// Shared by the GPU benchmarks that scripts/gpu-check.sh runs on a lent GPU
// machine (built with kernels/ alone): the bench JSON of DESIGN.md, and the
// device's copy bandwidth that kernels' achieved bandwidth is compared to.
#ifndef SOLVERD_BENCH_COMMON_GPU_BENCH_UTIL_H_
#define SOLVERD_BENCH_COMMON_GPU_BENCH_UTIL_H_

#include <cuda_runtime.h>

#include <cstdio>
#include <string>

namespace solverd::bench {

class BenchRecords {
 public:
  void Add(const std::string& c, const std::string& system, const std::string& backend,
           const std::string& metric, double value) {
    char line[512];
    std::snprintf(line, sizeof(line),
                  "%s\n  {\"case\": \"%s\", \"system\": \"%s\", \"backend\": \"%s\", "
                  "\"metric\": \"%s\", \"value\": %.6g}",
                  records_.empty() ? "" : ",", c.c_str(), system.c_str(), backend.c_str(),
                  metric.c_str(), value);
    records_ += line;
  }
  // Prints the whole document to stdout.
  void Print(const std::string& family, const std::string& machine) const {
    std::printf("{\"family\": \"%s\", \"machine\": \"%s\", \"command\": \"scripts/gpu-check.sh\", "
                "\"records\": [%s\n]}\n",
                family.c_str(), machine.c_str(), records_.c_str());
  }

 private:
  std::string records_;
};

// Device-to-device cudaMemcpy of `bytes`, counted as read + write, per second.
inline double CopyBandwidth(size_t bytes) {
  void *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) return 0;
  cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  cudaEventRecord(start);
  const int reps = 20;
  for (int r = 0; r < reps; ++r) cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
  cudaEventRecord(stop);
  cudaEventSynchronize(stop);
  float ms = 0;
  cudaEventElapsedTime(&ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaFree(a);
  cudaFree(b);
  return 2.0 * bytes * reps / (ms * 1e-3);
}

}  // namespace solverd::bench

#endif  // SOLVERD_BENCH_COMMON_GPU_BENCH_UTIL_H_
