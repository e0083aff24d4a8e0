// A BPE merge table over token ids, applied the way Hugging Face's
// tokenizers and SentencePiece apply it: of every adjacent pair that has a
// merge, the one of lowest rank is merged first, the leftmost among equal
// ranks, until no pair has one. A heap of candidate pairs over a linked
// list of symbols, so a word of n symbols takes O(n log n): a
// SentencePiece-style tokenizer without a pre-tokenizer merges the whole
// text as one word. Immutable once built: thread-safe.
#ifndef SOLVERD_KERNELS_QUANT_FORMATS_BPE_MERGES_H_
#define SOLVERD_KERNELS_QUANT_FORMATS_BPE_MERGES_H_

#include <cstdint>
#include <unordered_map>
#include <vector>

namespace solverd::quant {

class BpeMerges {
 public:
  // `left` then `right` merge into `merged`, ranked after every merge added
  // before; a pair added again keeps its first (lower) rank.
  void Add(int32_t left, int32_t right, int32_t merged);

  // Merges `symbols` (token ids, in order) in place.
  void Apply(std::vector<int32_t>* symbols) const;

 private:
  struct Merge {
    int64_t rank;
    int32_t merged;
  };
  static uint64_t Key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }

  std::unordered_map<uint64_t, Merge> merges_;
};

}  // namespace solverd::quant

#endif  // SOLVERD_KERNELS_QUANT_FORMATS_BPE_MERGES_H_
