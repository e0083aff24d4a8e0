// A Hugging Face tokenizer.json as llama.cpp's vocabulary metadata
// (tokenizer.ggml.*). Two kinds of BPE tokenizer are understood:
//  - SentencePiece-style ("model.byte_fallback": true, as Llama 1/2 and
//    Mistral ship): llama.cpp's "llama" vocabulary, bytes as <0xNN> tokens
//    of type BYTE, scores falling with the token id (earlier merges win);
//  - byte-level BPE (GPT-2, Llama 3, Qwen2): llama.cpp's "gpt2"
//    vocabulary with the merges in their order, and the pre-tokenizer
//    llama.cpp must split words with: "gpt-2", "llama-bpe" or "qwen2" for
//    the regexes word_split.h knows, else "default".
// Added tokens keep their ids; special ones are CONTROL, the others
// USER_DEFINED. The list is padded with unused [PADn] tokens up to the
// model's vocab_size (the embedding's rows). Internal to kernels/quant.
// Pure functions.
#ifndef SOLVERD_KERNELS_QUANT_FORMATS_GGUF_VOCAB_H_
#define SOLVERD_KERNELS_QUANT_FORMATS_GGUF_VOCAB_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "quant/formats/gguf.h"
#include "quant/formats/json.h"

namespace solverd::quant::internal {

struct GgufVocab {
  std::string model;  // "llama" or "gpt2"
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;  // llama.cpp's token types
  std::vector<std::string> merges;  // "a b", gpt2 only
  std::string pre = "default";       // tokenizer.ggml.pre, gpt2 only
  int64_t unknown = -1;
};

// INVALID_ARGUMENT naming tokenizer.json and what it holds that cannot be
// written (another model type, ids with holes, more tokens than
// `vocab_size`).
Status VocabFromTokenizerJson(std::string_view json, int64_t vocab_size, GgufVocab* out);
// The same from tokenizer.json already parsed.
Status VocabFromTokenizerJson(const JsonValue& root, int64_t vocab_size, GgufVocab* out);

// The vocabulary's keys, with the special token ids that are >= 0.
void AddVocabMetadata(const GgufVocab& vocab, int64_t bos, int64_t eos, GgufMetadata* kv);

}  // namespace solverd::quant::internal

#endif  // SOLVERD_KERNELS_QUANT_FORMATS_GGUF_VOCAB_H_
