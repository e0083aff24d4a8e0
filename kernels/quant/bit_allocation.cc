#include "quant/bit_allocation.h"

#include <algorithm>
#include <string>

namespace solverd::quant {
namespace {

struct State {
  int64_t bytes = 0;
  double error = 0;
  int64_t parent = -1;  // index in the previous layer's frontier
  int choice = -1;      // candidate of this layer
};

// The states of `next` that no other state beats on both bytes and error,
// ascending in bytes (so descending in error).
std::vector<State> ParetoFront(std::vector<State> next) {
  std::sort(next.begin(), next.end(), [](const State& a, const State& b) {
    return a.bytes != b.bytes ? a.bytes < b.bytes : a.error < b.error;
  });
  std::vector<State> front;
  for (const State& s : next) {
    if (front.empty() || s.error < front.back().error) front.push_back(s);
  }
  return front;
}

}  // namespace

Status AllocateBits(const std::vector<std::vector<BitsCandidate>>& candidates,
                    int64_t budget_bytes, std::vector<int>* chosen) {
  chosen->clear();
  int64_t smallest = 0;
  for (size_t l = 0; l < candidates.size(); ++l) {
    if (candidates[l].empty()) {
      return InvalidArgument("allocation: layer " + std::to_string(l) + " has no candidates");
    }
    int64_t least = candidates[l][0].bytes;
    for (const BitsCandidate& c : candidates[l]) least = std::min(least, c.bytes);
    smallest += least;
  }
  if (smallest > budget_bytes) {
    return InvalidArgument("budget of " + std::to_string(budget_bytes) +
                           " bytes is below the smallest allocation (" +
                           std::to_string(smallest) + " bytes)");
  }
  // fronts[l]: the frontier after layers 0..l-1; fronts[0] the empty model.
  std::vector<std::vector<State>> fronts(1, std::vector<State>(1));
  for (const std::vector<BitsCandidate>& layer : candidates) {
    const std::vector<State>& front = fronts.back();
    std::vector<State> next;
    next.reserve(front.size() * layer.size());
    for (size_t p = 0; p < front.size(); ++p) {
      for (size_t c = 0; c < layer.size(); ++c) {
        const int64_t bytes = front[p].bytes + layer[c].bytes;
        if (bytes > budget_bytes) continue;
        next.push_back({bytes, front[p].error + layer[c].error, static_cast<int64_t>(p),
                        static_cast<int>(c)});
      }
    }
    fronts.push_back(ParetoFront(std::move(next)));
    if (static_cast<int64_t>(fronts.back().size()) > kMaxFrontierStates) {
      return ResourceExhausted("allocation: more than " + std::to_string(kMaxFrontierStates) +
                               " Pareto states; too many distinct layer sizes to solve exactly");
    }
  }
  // The last state has the least error (the frontier descends in error).
  chosen->assign(candidates.size(), 0);
  int64_t at = static_cast<int64_t>(fronts.back().size()) - 1;
  for (size_t l = candidates.size(); l > 0; --l) {
    const State& s = fronts[l][static_cast<size_t>(at)];
    (*chosen)[l - 1] = s.choice;
    at = s.parent;
  }
  return Status::Ok();
}

}  // namespace solverd::quant
