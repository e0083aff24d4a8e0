// ProgressSink: where a solver reports how far it has got.
//
// Solvers call Report() at their natural checkpoints (every k iterations);
// the sink decides what to keep (the server rate-limits per job), so a
// Report() must be cheap and must never block on a slow reader. A sink is
// called from the solver's thread only; implementations that share state
// with other threads synchronise internally.
#ifndef SOLVERD_KERNELS_COMMON_PROGRESS_H_
#define SOLVERD_KERNELS_COMMON_PROGRESS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace solverd {

struct Progress {
  int64_t iteration = 0;
  double objective = 0;        // the family's objective at this point
  double residual = 0;         // the family's convergence measure (lower is better)
  double elapsed_seconds = 0;  // since the solver started
  double fraction = 0;         // estimated share of the work done, 0..1
  std::string stage;           // e.g. "sinkhorn", "newton"
  std::vector<std::pair<std::string, double>> extras;  // family-specific figures
};

class ProgressSink {
 public:
  virtual ~ProgressSink() = default;
  virtual void Report(const Progress& progress) = 0;
};

}  // namespace solverd

#endif  // SOLVERD_KERNELS_COMMON_PROGRESS_H_
