// Lane discovery: what this machine can run jobs on.
#include "server/lane.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/device.h"
#include "server/status_util.h"

namespace solverd::server {

absl::StatusOr<std::vector<Lane>> MakeLanes(const ServerOptions& options) {
  if (options.device != "auto" && options.device != "cpu" && options.device != "cuda") {
    return absl::InvalidArgumentError("--device: must be auto, cpu or cuda");
  }
  const int gpus = options.device == "cpu" ? 0 : CudaDeviceCount();
  if (options.device == "cuda" && gpus == 0) {
    return absl::FailedPreconditionError(CudaCompiledIn()
        ? "--device=cuda: no CUDA device found" : "--device=cuda: built without CUDA");
  }
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  const int cpu_workers = options.cpu_workers >= 0 ? options.cpu_workers : (gpus > 0 ? 1 : cores);
  const int solver_threads = options.solver_threads > 0
      ? options.solver_threads : std::max(1, cores / std::max(1, cpu_workers));
  std::vector<Lane> lanes;
  for (int gpu = 0; gpu < gpus; ++gpu) {
    for (int s = 0; s < options.lanes_per_gpu; ++s) {
      Lane lane;
      lane.index = static_cast<int>(lanes.size());
      lane.device = Device::Cuda(gpu);
      absl::Status st = FromKernel(CreateStream(gpu, &lane.stream));
      if (!st.ok()) return st;
      lanes.push_back(lane);
    }
  }
  for (int w = 0; w < cpu_workers; ++w) {
    Lane lane;
    lane.index = static_cast<int>(lanes.size());
    lane.device = Device::Cpu();
    lane.cpu_threads = solver_threads;
    lanes.push_back(lane);
  }
  if (lanes.empty()) return absl::InvalidArgumentError("--cpu-workers: no lanes to run jobs on");
  return lanes;
}

std::map<std::string, int64_t> MemoryBudgets(const ServerOptions& options,
                                             const std::vector<Lane>& lanes) {
  std::map<std::string, int64_t> budgets;
  for (const Lane& lane : lanes) {
    const std::string name = lane.device.ToString();
    if (budgets.contains(name)) continue;
    if (!lane.device.is_cuda()) {
      budgets[name] = options.cpu_memory_budget_bytes;
      continue;
    }
    size_t free_bytes = 0, total_bytes = 0;
    if (!CudaMemoryInfo(lane.device.index, &free_bytes, &total_bytes).ok()) total_bytes = 0;
    budgets[name] = static_cast<int64_t>(options.gpu_memory_fraction * total_bytes);
  }
  return budgets;
}

}  // namespace solverd::server
