// Hugging Face checkpoint folders, as `transformers` saves them:
// config.json (the architecture and its hyperparameters), the weights in
// one model.safetensors or in shards that model.safetensors.index.json
// lists ({"weight_map": {tensor: shard file}}), and tokenizer and
// generation files beside them.
//
// This reads the index and the config and merges the shards into one
// SafetensorsFile whose tensors point into their own shard's bytes; the
// caller maps or loads each file (never all of them into one buffer), and
// those bytes must outlive what refers to them. Errors are
// INVALID_ARGUMENT naming the file and entry. Pure functions.
#ifndef SOLVERD_KERNELS_QUANT_FORMATS_CHECKPOINT_H_
#define SOLVERD_KERNELS_QUANT_FORMATS_CHECKPOINT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "quant/formats/safetensors.h"

namespace solverd::quant {

inline constexpr std::string_view kConfigFile = "config.json";
inline constexpr std::string_view kShardIndexFile = "model.safetensors.index.json";
inline constexpr std::string_view kSingleWeightsFile = "model.safetensors";

// Whether `name` is a file name alone: no directory part, not "." or "..".
bool IsPlainFileName(std::string_view name);

struct ShardIndex {
  std::vector<std::string> files;  // in order of first mention
  std::vector<std::pair<std::string, std::string>> weight_map;  // tensor, its file
};

Status ParseShardIndex(std::string_view json, ShardIndex* out);

struct Shard {
  std::string name;        // its file name, for errors
  std::string_view bytes;  // the whole file
};

// Parses every shard and merges them: tensor names are unique across the
// shards, each tensor keeps its shard (TensorEntry::shard, the index into
// `shards`), and with an `index` (may be null) every tensor is in the
// shard the index names and the index names no tensor that is absent.
// The metadata is the first shard's.
Status MergeShards(const std::vector<Shard>& shards, const ShardIndex* index,
                   SafetensorsFile* out);

// What config.json says of the architecture. The hyperparameters are the
// Llama family's (llama, mistral, qwen2); 0 where the file leaves them out.
struct ModelConfig {
  std::string model_type;  // "" when config.json has none
  int64_t vocab_size = 0, hidden_size = 0, intermediate_size = 0;
  int64_t num_hidden_layers = 0, num_attention_heads = 0, num_key_value_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_attention_heads unless given
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000;
  bool tie_word_embeddings = false;
  int64_t bos_token_id = -1, eos_token_id = -1;  // -1: not given
};

// For a Llama-family model_type the hyperparameters must be present,
// positive and consistent (heads divide the width, KV heads the heads).
Status ParseModelConfig(std::string_view json, ModelConfig* out);

// llama, mistral and qwen2: one block layout, one tensor naming.
bool IsLlamaFamily(std::string_view model_type);

// For a Llama-family `config`: the embedding, the final norm, every
// block's attention and MLP projections and norms, and lm_head (unless the
// embeddings are tied) are in `weights` as 2-D (norms 1-D) float tensors
// of the shapes the config gives. Names the first that is not.
Status CheckLlamaWeights(const ModelConfig& config, const SafetensorsFile& weights);

}  // namespace solverd::quant

#endif  // SOLVERD_KERNELS_QUANT_FORMATS_CHECKPOINT_H_
