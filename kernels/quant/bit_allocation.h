// Bit allocation: the bits of each layer chosen to make the summed error
// of the layers smallest while their stored size stays within a budget,
// a multiple-choice knapsack, solved exactly by dynamic programming over
// the Pareto frontier of (bytes, error) of the layers so far. (This is the
// integer program over per-layer bit widths of "Improving Post Training
// Neural Quantization", Hubara et al., 2021.) Pure functions.
// Thread-safe: no state.
#ifndef SOLVERD_KERNELS_QUANT_BIT_ALLOCATION_H_
#define SOLVERD_KERNELS_QUANT_BIT_ALLOCATION_H_

#include <cstdint>
#include <vector>

#include "common/status.h"

namespace solverd::quant {

// One way to store a layer.
struct BitsCandidate {
  int bits = 0;
  int64_t bytes = 0;    // stored size: codes, scales and zero points
  double error = 0;     // the layer's error at these bits (summed across layers)
  double output_error_squared = 0;  // for reports: ||(W - Q) X^T||_F^2
};

// The frontier a solve may keep before it gives up (RESOURCE_EXHAUSTED).
inline constexpr int64_t kMaxFrontierStates = int64_t{1} << 22;

// Picks one candidate per layer (`chosen[l]` indexes candidates[l]) with
// total bytes <= budget_bytes and the least total error; among allocations
// with equal error, the smallest. INVALID_ARGUMENT when even the smallest
// candidates exceed the budget, or a layer has none.
Status AllocateBits(const std::vector<std::vector<BitsCandidate>>& candidates,
                    int64_t budget_bytes, std::vector<int>* chosen);

}  // namespace solverd::quant

#endif  // SOLVERD_KERNELS_QUANT_BIT_ALLOCATION_H_
