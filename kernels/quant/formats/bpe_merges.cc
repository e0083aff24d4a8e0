#include "quant/formats/bpe_merges.h"

#include <functional>
#include <queue>

namespace solverd::quant {
namespace {

// A pair that may merge: the symbol at `left` with the one after it, as
// they were when the candidate was queued.
struct Candidate {
  int64_t rank;
  int64_t left;
  int32_t left_id, right_id, merged;
  bool operator>(const Candidate& o) const {
    return rank != o.rank ? rank > o.rank : left > o.left;
  }
};

}  // namespace

void BpeMerges::Add(int32_t left, int32_t right, int32_t merged) {
  merges_.emplace(Key(left, right), Merge{static_cast<int64_t>(merges_.size()), merged});
}

void BpeMerges::Apply(std::vector<int32_t>* symbols) const {
  std::vector<int32_t>& id = *symbols;
  const int64_t n = static_cast<int64_t>(id.size());
  if (n < 2 || merges_.empty()) return;
  // Symbols keep the position of their first piece; merged-away ones are
  // unlinked (next/prev skip them) and marked -1.
  std::vector<int64_t> next(static_cast<size_t>(n)), prev(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    next[i] = i + 1;
    prev[i] = i - 1;
  }
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  const auto consider = [&](int64_t left) {
    if (left < 0 || next[left] >= n) return;
    const auto found = merges_.find(Key(id[left], id[next[left]]));
    if (found == merges_.end()) return;
    queue.push({found->second.rank, left, id[left], id[next[left]], found->second.merged});
  };
  for (int64_t i = 0; i + 1 < n; ++i) consider(i);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    // Stale when either side has merged since: a merge always changes the
    // id at `left` (a longer token), and the right side is only replaced
    // by merging into its left neighbour.
    const int64_t right = next[c.left];
    if (id[c.left] != c.left_id || right >= n || id[right] != c.right_id) continue;
    id[c.left] = c.merged;
    id[right] = -1;
    next[c.left] = next[right];
    if (next[right] < n) prev[next[right]] = c.left;
    consider(prev[c.left]);
    consider(c.left);
  }
  int64_t kept = 0;
  for (int64_t i = 0; i < n; i = next[i]) id[kept++] = id[i];
  id.resize(static_cast<size_t>(kept));
}

}  // namespace solverd::quant
