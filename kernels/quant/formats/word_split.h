// How byte-level BPE tokenizers cut text into words before merging: GPT-2's
// ByteLevel regex, and the Split regexes of Llama 3 and Qwen2, written out
// by hand (the kernels have no regex library with \p{L}). Letters, digits
// and white space are told apart as the regexes' \p{L}, \p{N} and \s for
// ASCII; any other code point counts as a letter unless it is Unicode white
// space, so text outside ASCII may split where the regex library would not.
// Pure functions.
#ifndef SOLVERD_KERNELS_QUANT_FORMATS_WORD_SPLIT_H_
#define SOLVERD_KERNELS_QUANT_FORMATS_WORD_SPLIT_H_

#include <cstddef>
#include <cstdint>
#include <string_view>
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

struct JsonValue;

// The split and prefix space a tokenizer.json's `pre_tokenizer` object
// asks for: ByteLevel (GPT-2's regex with use_regex, else none), or Llama
// 3's or Qwen2's Split regex then ByteLevel without one. INVALID_ARGUMENT
// naming it otherwise.
Status ReadWordSplit(const JsonValue& pre_tokenizer, WordSplit* split, bool* prefix_space);

// The code points of UTF-8 `text` and the byte offset of each, then of the
// end (so `at` has one more entry); INVALID_ARGUMENT naming the byte offset
// of invalid UTF-8.
Status DecodeUtf8(std::string_view text, std::vector<uint32_t>* cps, std::vector<size_t>* at);

// The words of `text` (UTF-8) as `split` splits them, as byte ranges
// [begin, end); INVALID_ARGUMENT naming the byte offset of invalid UTF-8.
Status SplitWords(std::string_view text, WordSplit split,
                  std::vector<std::pair<size_t, size_t>>* words);

}  // namespace solverd::quant

#endif  // SOLVERD_KERNELS_QUANT_FORMATS_WORD_SPLIT_H_
