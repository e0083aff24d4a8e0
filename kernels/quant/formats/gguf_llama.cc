#include "quant/formats/gguf_llama.h"

#include <utility>

#include "quant/formats/json.h"

namespace solverd::quant::internal {
namespace {

struct BlockTensor {
  std::string_view hf;    // after "model.layers.N."
  std::string_view gguf;  // after "blk.N."
  int rope = 0;           // 1: query heads, 2: key/value heads (llama only)
  bool to_f32 = false;
};

constexpr BlockTensor kBlockTensors[] = {
    {"input_layernorm.weight", "attn_norm.weight", 0, true},
    {"self_attn.q_proj.weight", "attn_q.weight", 1, false},
    {"self_attn.k_proj.weight", "attn_k.weight", 2, false},
    {"self_attn.v_proj.weight", "attn_v.weight", 0, false},
    {"self_attn.o_proj.weight", "attn_output.weight", 0, false},
    {"self_attn.q_proj.bias", "attn_q.bias", 1, true},
    {"self_attn.k_proj.bias", "attn_k.bias", 2, true},
    {"self_attn.v_proj.bias", "attn_v.bias", 0, true},
    {"post_attention_layernorm.weight", "ffn_norm.weight", 0, true},
    {"mlp.gate_proj.weight", "ffn_gate.weight", 0, false},
    {"mlp.up_proj.weight", "ffn_up.weight", 0, false},
    {"mlp.down_proj.weight", "ffn_down.weight", 0, false},
};

// "model.layers.12.rest" -> 12 and "rest"; false for other names.
bool SplitBlockName(std::string_view name, int64_t* block, std::string_view* rest) {
  constexpr std::string_view kPrefix = "model.layers.";
  if (!name.starts_with(kPrefix)) return false;
  name.remove_prefix(kPrefix.size());
  const size_t dot = name.find('.');
  if (dot == 0 || dot == std::string_view::npos) return false;
  int64_t n = 0;
  for (const char c : name.substr(0, dot)) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + (c - '0');
  }
  *block = n;
  *rest = name.substr(dot + 1);
  return true;
}

}  // namespace

LlamaGgufLayout::LlamaGgufLayout(ModelConfig config, GgufVocab vocab)
    : config_(std::move(config)), vocab_(std::move(vocab)),
      architecture_(config_.model_type == "qwen2" ? "qwen2" : "llama") {}

Status LlamaGgufLayout::Create(const ModelConfig& config, std::string_view tokenizer_json,
                               const SafetensorsFile& weights,
                               std::shared_ptr<const LlamaGgufLayout>* out) {
  if (tokenizer_json.empty()) {
    return InvalidArgument("export: llama.cpp needs the vocabulary: the checkpoint has no "
                           "tokenizer.json");
  }
  GgufVocab vocab;
  SOLVERD_RETURN_IF_ERROR(VocabFromTokenizerJson(tokenizer_json, config.vocab_size, &vocab));
  std::shared_ptr<const LlamaGgufLayout> layout(new LlamaGgufLayout(config, std::move(vocab)));
  for (const TensorEntry& t : weights.tensors) {
    GgufTensorPlan plan;
    SOLVERD_RETURN_IF_ERROR(layout->Map(t.name, &plan));
  }
  *out = std::move(layout);
  return Status::Ok();
}

Status LlamaGgufLayout::Map(std::string_view hf_name, GgufTensorPlan* out) const {
  *out = GgufTensorPlan();
  if (hf_name == "model.embed_tokens.weight") {
    out->name = "token_embd.weight";
    return Status::Ok();
  }
  if (hf_name == "model.norm.weight") {
    out->name = "output_norm.weight";
    out->to_f32 = true;
    return Status::Ok();
  }
  if (hf_name == "lm_head.weight") {
    out->name = "output.weight";
    return Status::Ok();
  }
  int64_t block = 0;
  std::string_view rest;
  if (SplitBlockName(hf_name, &block, &rest) && block < config_.num_hidden_layers) {
    if (rest == "self_attn.rotary_emb.inv_freq") {  // recomputed by llama.cpp
      out->kept = false;
      return Status::Ok();
    }
    for (const BlockTensor& b : kBlockTensors) {
      if (b.hf != rest) continue;
      out->name = "blk." + std::to_string(block) + "." + std::string(b.gguf);
      out->to_f32 = b.to_f32;
      // Qwen2's converter keeps Hugging Face's order (llama.cpp runs it
      // with NeoX-style RoPE); Llama's reorders it.
      if (architecture_ == "llama" && b.rope != 0) {
        out->rope_heads = b.rope == 1 ? config_.num_attention_heads : config_.num_key_value_heads;
      }
      return Status::Ok();
    }
  }
  return InvalidArgument("export: tensor " + JsonQuote(std::string(hf_name)) +
                         " has no place in llama.cpp's " + architecture_ + " layout");
}

void LlamaGgufLayout::AddMetadata(GgufMetadata* kv) const {
  const ModelConfig& c = config_;
  const std::string a = architecture_ + ".";
  kv->String("general.architecture", architecture_);
  kv->Uint32(a + "context_length",
             static_cast<uint32_t>(c.max_position_embeddings > 0 ? c.max_position_embeddings
                                                                 : 2048));
  kv->Uint32(a + "embedding_length", static_cast<uint32_t>(c.hidden_size));
  kv->Uint32(a + "block_count", static_cast<uint32_t>(c.num_hidden_layers));
  kv->Uint32(a + "feed_forward_length", static_cast<uint32_t>(c.intermediate_size));
  kv->Uint32(a + "attention.head_count", static_cast<uint32_t>(c.num_attention_heads));
  kv->Uint32(a + "attention.head_count_kv", static_cast<uint32_t>(c.num_key_value_heads));
  kv->Uint32(a + "attention.key_length", static_cast<uint32_t>(c.head_dim));
  kv->Uint32(a + "attention.value_length", static_cast<uint32_t>(c.head_dim));
  kv->Uint32(a + "rope.dimension_count", static_cast<uint32_t>(c.head_dim));
  kv->Float32(a + "rope.freq_base", static_cast<float>(c.rope_theta));
  kv->Float32(a + "attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  kv->Uint32(a + "vocab_size", static_cast<uint32_t>(c.vocab_size));
  AddVocabMetadata(vocab_, c.bos_token_id, c.eos_token_id, kv);
}

std::string PermuteRopeRows(std::string_view bytes, int64_t rows, int64_t heads) {
  const size_t row_bytes = bytes.size() / static_cast<size_t>(rows);
  const int64_t per_head = rows / heads, half = per_head / 2;
  std::string out(bytes.size(), '\0');
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t s = 0; s < 2; ++s) {
      for (int64_t i = 0; i < half; ++i) {
        const int64_t from = h * per_head + s * half + i, to = h * per_head + 2 * i + s;
        bytes.substr(static_cast<size_t>(from) * row_bytes, row_bytes)
            .copy(&out[static_cast<size_t>(to) * row_bytes], row_bytes);
      }
    }
  }
  return out;
}

}  // namespace solverd::quant::internal
