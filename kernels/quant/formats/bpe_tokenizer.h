// Text to token ids by a checkpoint's tokenizer.json, for calibration from
// text. Two kinds of BPE vocabulary ("model.type" BPE) are applied:
//  - byte-level (GPT-2, Llama 3, Qwen2): the text split into words as GPT-2
//    splits it (ByteLevel with use_regex) or as Llama 3 and Qwen2 do (their
//    Split regex, then ByteLevel without one; word_split.h), each word's
//    bytes as GPT-2's byte characters, merged (a whole word in the
//    vocabulary is one token with "model.ignore_merges");
//  - SentencePiece-style ("model.byte_fallback", as Llama 1/2 and Mistral
//    ship): the normalizer's Prepend and Replace steps, or a Metaspace
//    pre_tokenizer (spaces as "▁", one prepended, split before each "▁"
//    when it says so), then each word's characters merged; a character
//    outside the vocabulary becomes its UTF-8 bytes' <0xNN> tokens, or the
//    unknown token.
// Merges apply lowest rank first (bpe_merges.h). The leading special tokens
// of a TemplateProcessing post_processor (Llama's <s>) are what each
// sequence starts with: sequence_start(). Added tokens in the text are not
// recognized, and normalizers other than Prepend, Replace of a string and
// NFC are refused (NFC is not applied: text already in NFC is encoded
// exactly). Immutable once parsed: thread-safe.
#ifndef SOLVERD_KERNELS_QUANT_FORMATS_BPE_TOKENIZER_H_
#define SOLVERD_KERNELS_QUANT_FORMATS_BPE_TOKENIZER_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"
#include "quant/formats/bpe_merges.h"
#include "quant/formats/word_split.h"

namespace solverd::quant {

struct JsonValue;

class BpeTokenizer {
 public:
  // INVALID_ARGUMENT naming tokenizer.json and what it holds that cannot
  // be applied; ids must be below `vocab_size` (the embedding's rows).
  static Status Parse(std::string_view tokenizer_json, int64_t vocab_size, BpeTokenizer* out);

  // The ids of `text`, appended to *ids (no sequence_start()).
  Status Encode(std::string_view text, std::vector<int32_t>* ids) const;

  // The ids the post_processor puts before a sequence (may be none).
  const std::vector<int32_t>& sequence_start() const { return sequence_start_; }

 private:
  Status ParseSentencePiece(const JsonValue& root, const JsonValue& model);
  std::string Normalize(std::string_view text) const;
  // Spaces as the Metaspace replacement, one prepended if asked.
  std::string Metaspace(std::string_view text) const;
  // One word's ids: its bytes' characters (byte-level) or its characters
  // (SentencePiece-style), merged.
  Status EncodeWord(std::string_view word, std::vector<int32_t>* ids) const;
  Status SentencePieceSymbols(std::string_view word, std::vector<int32_t>* ids) const;
  int32_t Find(const std::string& token) const {
    const auto found = vocab_.find(token);
    return found == vocab_.end() ? -1 : found->second;
  }

  std::unordered_map<std::string, int32_t> vocab_;
  BpeMerges merges_;
  std::array<int32_t, 256> byte_ids_{};  // the token of each byte, or -1
  bool sentence_piece_ = false;
  // The normalizer's steps in order: `first` (empty: the start of the
  // text) becomes `second`.
  std::vector<std::pair<std::string, std::string>> normalizer_;
  // Byte-level.
  WordSplit split_ = WordSplit::kNone;
  bool add_prefix_space_ = false;
  bool ignore_merges_ = false;
  // SentencePiece-style: Metaspace (empty replacement: none).
  std::string metaspace_;
  bool metaspace_prepend_ = false;
  bool metaspace_split_ = false;
  int32_t unknown_ = -1;
  bool fuse_unknown_ = false;
  std::vector<int32_t> sequence_start_;
};

}  // namespace solverd::quant

#endif  // SOLVERD_KERNELS_QUANT_FORMATS_BPE_TOKENIZER_H_
