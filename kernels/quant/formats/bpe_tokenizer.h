// Text to token ids by a checkpoint's tokenizer.json, for calibration from
// text: byte-level BPE vocabularies ("model.type" BPE with a ByteLevel
// pre-tokenizer) whose words are split as GPT-2 splits them (ByteLevel
// with use_regex), or as Llama 3 and Qwen2 do (a Split pre-tokenizer with
// their regex, then ByteLevel without one). Each word's bytes become
// GPT-2's byte characters and are merged by the merges' ranks, lowest
// first (a whole word in the vocabulary is one token with
// "model.ignore_merges"). Letters, digits and white space are told apart
// as the regexes' \p{L}, \p{N} and \s for ASCII; any other code point
// counts as a letter unless it is Unicode white space, so text outside
// ASCII may split where the regex library would not. Added tokens in the
// text are not recognized, and a normalizer other than NFC is refused
// (NFC is not applied: text already in NFC is encoded exactly).
// SentencePiece-style vocabularies (byte_fallback, as Llama 1/2 and
// Mistral ship) are refused with a message asking for token ids.
// Immutable once parsed: thread-safe.
#ifndef SOLVERD_KERNELS_QUANT_FORMATS_BPE_TOKENIZER_H_
#define SOLVERD_KERNELS_QUANT_FORMATS_BPE_TOKENIZER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"

namespace solverd::quant {

// How a pre-tokenizer splits text into words.
enum class WordSplit {
  kNone,    // ByteLevel without a regex: the text is one word
  kGpt2,    // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kLlama3,  // (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|...
  kQwen2,   // the same with \p{N} one digit at a time
};

// The words of `text` (UTF-8) as `split` splits them, as byte ranges
// [begin, end); INVALID_ARGUMENT naming the byte offset of invalid UTF-8.
Status SplitWords(std::string_view text, WordSplit split,
                  std::vector<std::pair<size_t, size_t>>* words);

class BpeTokenizer {
 public:
  // INVALID_ARGUMENT naming tokenizer.json and what it holds that cannot
  // be applied; ids must be below `vocab_size` (the embedding's rows).
  static Status Parse(std::string_view tokenizer_json, int64_t vocab_size, BpeTokenizer* out);

  // The ids of `text`, appended to *ids.
  Status Encode(std::string_view text, std::vector<int32_t>* ids) const;

 private:
  // One word's ids (its bytes as byte characters, merged).
  Status EncodeWord(std::string_view word, std::vector<int32_t>* ids) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<std::string, int64_t> ranks_;  // merge "a b" -> rank
  WordSplit split_ = WordSplit::kNone;
  bool add_prefix_space_ = false;
  bool ignore_merges_ = false;
};

}  // namespace solverd::quant

#endif  // SOLVERD_KERNELS_QUANT_FORMATS_BPE_TOKENIZER_H_
