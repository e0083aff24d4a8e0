// llama.cpp's layout of a Llama-family checkpoint (checkpoint.h) in GGUF:
// its tensor names (token_embd, blk.N.attn_q, ..., output_norm, output),
// the row order its RoPE expects of Q and K, norms in F32, the
// architecture's hyperparameters under "llama." (or "qwen2.") and the
// vocabulary from tokenizer.json (gguf_vocab.h), as llama.cpp's own
// converter (convert_hf_to_gguf.py) writes them. Internal to kernels/quant.
// Immutable once made, so safe from any thread.
#ifndef SOLVERD_KERNELS_QUANT_FORMATS_GGUF_LLAMA_H_
#define SOLVERD_KERNELS_QUANT_FORMATS_GGUF_LLAMA_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "quant/formats/checkpoint.h"
#include "quant/formats/gguf.h"
#include "quant/formats/gguf_vocab.h"
#include "quant/formats/safetensors.h"

namespace solverd::quant::internal {

// Where a checkpoint tensor goes in the file.
struct GgufTensorPlan {
  bool kept = true;  // false: llama.cpp does not read it (rotary_emb.inv_freq)
  std::string name;  // llama.cpp's
  // > 0: the rows are reordered from Hugging Face's RoPE layout (each
  // head's first half, then its second) to llama.cpp's (pairs) over this
  // many heads.
  int64_t rope_heads = 0;
  bool to_f32 = false;  // norms and biases, which llama.cpp reads as F32
};

class LlamaGgufLayout {
 public:
  // INVALID_ARGUMENT when the checkpoint has no tokenizer.json (empty), one
  // that cannot be written, or a tensor llama.cpp has no name for.
  static Status Create(const ModelConfig& config, std::string_view tokenizer_json,
                       const SafetensorsFile& weights,
                       std::shared_ptr<const LlamaGgufLayout>* out);

  const std::string& architecture() const { return architecture_; }
  // INVALID_ARGUMENT naming a tensor it has no place for.
  Status Map(std::string_view hf_name, GgufTensorPlan* out) const;
  // general.architecture, the hyperparameters and the vocabulary.
  void AddMetadata(GgufMetadata* kv) const;

 private:
  LlamaGgufLayout(ModelConfig config, GgufVocab vocab);

  const ModelConfig config_;
  const GgufVocab vocab_;
  const std::string architecture_;  // llama.cpp's: "llama" or "qwen2"
};

// `bytes` holds `rows` rows of `row_bytes` each; returns them reordered as
// GgufTensorPlan::rope_heads says (within each head, row s * half + i goes
// to 2 i + s).
std::string PermuteRopeRows(std::string_view bytes, int64_t rows, int64_t heads);

}  // namespace solverd::quant::internal

#endif  // SOLVERD_KERNELS_QUANT_FORMATS_GGUF_LLAMA_H_
