#include "quant/formats/checkpoint.h"

#include <map>
#include <set>

#include "quant/formats/json.h"

namespace solverd::quant {
namespace {

Status FileError(std::string_view file, const std::string& what) {
  return InvalidArgument(std::string(file) + ": " + what);
}

Status ReadInteger(const JsonValue& config, const char* name, int64_t* out) {
  const JsonValue* v = JsonFind(config, name);
  if (v == nullptr || v->kind == JsonValue::Kind::kNull) return Status::Ok();
  if (v->kind != JsonValue::Kind::kInteger) {
    return FileError(kConfigFile, std::string(name) + " must be an integer");
  }
  *out = v->integer;
  return Status::Ok();
}

// An id, or the first of a list of them (Llama 3.1's several end tokens).
Status ReadTokenId(const JsonValue& config, const char* name, int64_t* out) {
  const JsonValue* v = JsonFind(config, name);
  if (v != nullptr && v->kind == JsonValue::Kind::kArray && !v->array.empty()) v = &v->array[0];
  if (v == nullptr || v->kind == JsonValue::Kind::kNull) return Status::Ok();
  if (v->kind != JsonValue::Kind::kInteger || v->integer < 0) {
    return FileError(kConfigFile, std::string(name) + " must be a token id");
  }
  *out = v->integer;
  return Status::Ok();
}

Status ReadNumber(const JsonValue& config, const char* name, double* out) {
  const JsonValue* v = JsonFind(config, name);
  if (v == nullptr || v->kind == JsonValue::Kind::kNull) return Status::Ok();
  if (v->kind != JsonValue::Kind::kInteger && v->kind != JsonValue::Kind::kNumber) {
    return FileError(kConfigFile, std::string(name) + " must be a number");
  }
  *out = v->number;
  return Status::Ok();
}

Status CheckLlamaConfig(ModelConfig* c) {
  const std::pair<const char*, int64_t> required[] = {
      {"vocab_size", c->vocab_size},
      {"hidden_size", c->hidden_size},
      {"intermediate_size", c->intermediate_size},
      {"num_hidden_layers", c->num_hidden_layers},
      {"num_attention_heads", c->num_attention_heads}};
  for (const auto& [name, value] : required) {
    if (value <= 0) {
      return FileError(kConfigFile, std::string(name) + " must be a positive integer for " +
                                        c->model_type);
    }
  }
  if (c->num_key_value_heads == 0) c->num_key_value_heads = c->num_attention_heads;
  if (c->num_key_value_heads < 0 || c->num_attention_heads % c->num_key_value_heads != 0) {
    return FileError(kConfigFile, "num_key_value_heads must divide num_attention_heads");
  }
  if (c->head_dim == 0) {
    if (c->hidden_size % c->num_attention_heads != 0) {
      return FileError(kConfigFile, "num_attention_heads must divide hidden_size");
    }
    c->head_dim = c->hidden_size / c->num_attention_heads;
  }
  if (c->head_dim <= 0 || c->head_dim % 2 != 0) {
    return FileError(kConfigFile, "head_dim must be a positive even integer (RoPE)");
  }
  if (!(c->rms_norm_eps > 0) || !(c->rope_theta > 0)) {
    return FileError(kConfigFile, "rms_norm_eps and rope_theta must be positive");
  }
  return Status::Ok();
}

Status CheckShape(const SafetensorsFile& weights, const std::string& name,
                  std::vector<int64_t> shape) {
  const TensorEntry* t = weights.Find(name);
  if (t == nullptr) return InvalidArgument("model: the checkpoint has no tensor " + JsonQuote(name));
  if (!IsFloat(t->dtype) || t->shape != shape) {
    std::string want;
    for (const int64_t d : shape) want += (want.empty() ? "" : ", ") + std::to_string(d);
    return InvalidArgument("model: tensor " + JsonQuote(name) + " must be a float [" + want +
                           "] as config.json gives it");
  }
  return Status::Ok();
}

}  // namespace

bool IsPlainFileName(std::string_view name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos && name.find('\\') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

Status ParseShardIndex(std::string_view json, ShardIndex* out) {
  *out = ShardIndex();
  JsonValue index;
  if (Status s = ParseJson(json, &index); !s.ok()) return FileError(kShardIndexFile, s.message());
  const JsonValue* map = JsonFind(index, "weight_map");
  if (map == nullptr || map->kind != JsonValue::Kind::kObject || map->object.empty()) {
    return FileError(kShardIndexFile, "weight_map must be a non-empty object");
  }
  std::set<std::string> files, tensors;
  for (const JsonMember& m : map->object) {
    if (m.value.kind != JsonValue::Kind::kString || !IsPlainFileName(m.value.string)) {
      return FileError(kShardIndexFile, "weight_map[" + JsonQuote(m.name) +
                                            "] must name a file in the checkpoint's folder");
    }
    if (!tensors.insert(m.name).second) {
      return FileError(kShardIndexFile, "weight_map lists " + JsonQuote(m.name) + " twice");
    }
    if (files.insert(m.value.string).second) out->files.push_back(m.value.string);
    out->weight_map.emplace_back(m.name, m.value.string);
  }
  return Status::Ok();
}

Status MergeShards(const std::vector<Shard>& shards, const ShardIndex* index,
                   SafetensorsFile* out) {
  *out = SafetensorsFile();
  std::map<std::string, std::string> where;  // tensor -> its shard's name
  for (size_t s = 0; s < shards.size(); ++s) {
    SafetensorsFile file;
    if (Status st = ParseSafetensors(shards[s].bytes, &file); !st.ok()) {
      return FileError(shards[s].name, st.message());
    }
    if (s == 0) out->metadata = file.metadata;
    for (TensorEntry& t : file.tensors) {
      if (!where.emplace(t.name, shards[s].name).second) {
        return FileError(shards[s].name, "tensor " + JsonQuote(t.name) + " is also in " +
                                             where[t.name]);
      }
      t.shard = static_cast<int>(s);
      out->tensors.push_back(std::move(t));
    }
    out->shards.push_back(file.shards[0]);
  }
  if (index == nullptr) return Status::Ok();
  for (const auto& [tensor, file] : index->weight_map) {
    auto it = where.find(tensor);
    if (it == where.end() || it->second != file) {
      return FileError(kShardIndexFile, "tensor " + JsonQuote(tensor) + " is not in " + file);
    }
  }
  std::set<std::string_view> listed;
  for (const auto& entry : index->weight_map) listed.insert(entry.first);
  for (const auto& [tensor, file] : where) {
    if (!listed.contains(tensor)) {
      return FileError(kShardIndexFile, "weight_map does not list " + JsonQuote(tensor) + " of " +
                                            file);
    }
  }
  return Status::Ok();
}

bool IsLlamaFamily(std::string_view model_type) {
  return model_type == "llama" || model_type == "mistral" || model_type == "qwen2";
}

Status ParseModelConfig(std::string_view json, ModelConfig* out) {
  *out = ModelConfig();
  JsonValue config;
  if (Status s = ParseJson(json, &config); !s.ok()) return FileError(kConfigFile, s.message());
  if (config.kind != JsonValue::Kind::kObject) return FileError(kConfigFile, "must be an object");
  if (const JsonValue* type = JsonFind(config, "model_type")) {
    if (type->kind != JsonValue::Kind::kString) {
      return FileError(kConfigFile, "model_type must be a string");
    }
    out->model_type = type->string;
  }
  const std::pair<const char*, int64_t*> integers[] = {
      {"vocab_size", &out->vocab_size},
      {"hidden_size", &out->hidden_size},
      {"intermediate_size", &out->intermediate_size},
      {"num_hidden_layers", &out->num_hidden_layers},
      {"num_attention_heads", &out->num_attention_heads},
      {"num_key_value_heads", &out->num_key_value_heads},
      {"head_dim", &out->head_dim},
      {"max_position_embeddings", &out->max_position_embeddings}};
  for (const auto& [name, field] : integers) {
    SOLVERD_RETURN_IF_ERROR(ReadInteger(config, name, field));
  }
  SOLVERD_RETURN_IF_ERROR(ReadTokenId(config, "bos_token_id", &out->bos_token_id));
  SOLVERD_RETURN_IF_ERROR(ReadTokenId(config, "eos_token_id", &out->eos_token_id));
  SOLVERD_RETURN_IF_ERROR(ReadNumber(config, "rms_norm_eps", &out->rms_norm_eps));
  SOLVERD_RETURN_IF_ERROR(ReadNumber(config, "rope_theta", &out->rope_theta));
  if (const JsonValue* tie = JsonFind(config, "tie_word_embeddings")) {
    out->tie_word_embeddings = tie->kind == JsonValue::Kind::kBool && tie->boolean;
  }
  return IsLlamaFamily(out->model_type) ? CheckLlamaConfig(out) : Status::Ok();
}

Status CheckLlamaWeights(const ModelConfig& c, const SafetensorsFile& weights) {
  const int64_t hidden = c.hidden_size, ff = c.intermediate_size;
  const int64_t q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
  SOLVERD_RETURN_IF_ERROR(CheckShape(weights, "model.embed_tokens.weight", {c.vocab_size, hidden}));
  SOLVERD_RETURN_IF_ERROR(CheckShape(weights, "model.norm.weight", {hidden}));
  if (!c.tie_word_embeddings || weights.Find("lm_head.weight") != nullptr) {
    SOLVERD_RETURN_IF_ERROR(CheckShape(weights, "lm_head.weight", {c.vocab_size, hidden}));
  }
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    const std::string block = "model.layers." + std::to_string(layer) + ".";
    const std::pair<const char*, std::vector<int64_t>> expected[] = {
        {"input_layernorm.weight", {hidden}},
        {"post_attention_layernorm.weight", {hidden}},
        {"self_attn.q_proj.weight", {q, hidden}},
        {"self_attn.k_proj.weight", {kv, hidden}},
        {"self_attn.v_proj.weight", {kv, hidden}},
        {"self_attn.o_proj.weight", {hidden, q}},
        {"mlp.gate_proj.weight", {ff, hidden}},
        {"mlp.up_proj.weight", {ff, hidden}},
        {"mlp.down_proj.weight", {hidden, ff}}};
    for (const auto& [name, shape] : expected) {
      SOLVERD_RETURN_IF_ERROR(CheckShape(weights, block + name, shape));
    }
  }
  return Status::Ok();
}

}  // namespace solverd::quant
