// Lane: where a batch of jobs runs (one CPU worker, or one CUDA stream on
// one GPU), and how a server finds its lanes and their memory budgets.
// Lanes are plain values, made once at startup and read-only after; the
// stream a CUDA lane holds is used by that lane's thread alone.
#ifndef SOLVERD_SERVER_LANE_H_
#define SOLVERD_SERVER_LANE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/device.h"
#include "server/options.h"

namespace solverd::server {

struct Lane {
  int index = 0;
  ::solverd::Device device;
  ::solverd::StreamHandle stream = nullptr;
  int cpu_threads = 1;  // threads a CPU solve may use
  std::string name() const { return device.ToString() + "/lane" + std::to_string(index); }
};

// The lanes for `options` on this machine: CUDA streams when GPUs are
// present (and options.device allows), CPU workers otherwise or in addition.
absl::StatusOr<std::vector<Lane>> MakeLanes(const ServerOptions& options);
// The scheduler's memory budget per device (Device::ToString()) for `lanes`.
std::map<std::string, int64_t> MemoryBudgets(const ServerOptions& options,
                                             const std::vector<Lane>& lanes);

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_LANE_H_
