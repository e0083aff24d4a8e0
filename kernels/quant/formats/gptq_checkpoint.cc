#include "quant/formats/gptq_checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "quant/formats/json.h"
#include "quant/formats/safetensors.h"

namespace solverd::quant::internal {
namespace {

constexpr size_t kTarBlock = 512;

// An octal field of `width` bytes (the last a NUL), or GNU's base-256
// (big-endian, high bit set) for values octal cannot hold.
void NumberField(uint64_t value, size_t width, char* field) {
  const int digits = static_cast<int>(width - 1);
  if (digits >= 22 || value < (uint64_t{1} << (3 * digits))) {
    std::snprintf(field, width, "%0*llo", digits, static_cast<unsigned long long>(value));
    return;
  }
  std::memset(field, 0, width);
  for (size_t i = width - 1; i > 0; --i, value >>= 8) field[i] = static_cast<char>(value & 0xff);
  field[0] = static_cast<char>(0x80);
}

int64_t GroupOf(const Options& o) { return o.group_size > 0 ? o.group_size : -1; }

// The members both quantize_config.json and config.json's
// quantization_config hold. (Columns quantized in act order keep static
// groups, so g_idx is column / group_size and desc_act false for loaders.)
std::string GptqMembers(const Options& o) {
  char damp[32];
  std::snprintf(damp, sizeof(damp), "%.17g", o.damp);
  return std::string("\"quant_method\": \"gptq\", \"bits\": ") + std::to_string(o.bits) +
         ", \"group_size\": " + std::to_string(GroupOf(o)) + ", \"damp_percent\": " + damp +
         ", \"desc_act\": false, \"static_groups\": false, \"sym\": " +
         (o.symmetric ? "true" : "false") +
         ", \"true_sequential\": true, \"checkpoint_format\": \"gptq\"";
}

// config.json with "quantization_config" added as its last member.
Status AddQuantizationConfig(std::string_view config_json, const Options& o, std::string* out) {
  JsonValue config;
  if (Status s = ParseJson(config_json, &config); !s.ok()) {
    return InvalidArgument("config.json: " + s.message());
  }
  if (config.kind != JsonValue::Kind::kObject) return InvalidArgument("config.json: not an object");
  if (JsonFind(config, "quantization_config") != nullptr) {
    return InvalidArgument("config.json: the model is quantized already (it has a "
                           "quantization_config)");
  }
  const size_t close = config_json.rfind('}');  // a valid object ends with it
  *out = std::string(config_json.substr(0, close)) + (config.object.empty() ? "" : ",\n") +
         "  \"quantization_config\": {" + GptqMembers(o) + "}\n}\n";
  return Status::Ok();
}

struct Shard {
  std::string name;
  std::vector<TensorLayout> tensors;
  int64_t begin = 0, end = 0;  // its tensors' data in the weights' data
};

// The weights as shards of at most `max_bytes` of tensor data each (a
// larger tensor alone in its shard).
std::vector<Shard> PlanShards(const std::vector<TensorLayout>& tensors, int64_t max_bytes) {
  std::vector<Shard> shards(1);
  int64_t at = 0;
  for (const TensorLayout& t : tensors) {
    if (!shards.back().tensors.empty() && shards.back().end - shards.back().begin + t.bytes >
                                              max_bytes) {
      shards.emplace_back();
      shards.back().begin = shards.back().end = at;
    }
    shards.back().tensors.push_back(t);
    at += t.bytes;
    shards.back().end = at;
  }
  for (size_t s = 0; s < shards.size(); ++s) {
    char name[64];
    std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    shards[s].name = shards.size() == 1 ? "model.safetensors" : name;
  }
  return shards;
}

std::string ShardIndex(const std::vector<Shard>& shards) {
  std::string map;
  for (const Shard& shard : shards) {
    for (const TensorLayout& t : shard.tensors) {
      map += (map.empty() ? "" : ",\n    ") + JsonQuote(t.name) + ": " + JsonQuote(shard.name);
    }
  }
  return "{\n  \"metadata\": {\"total_size\": " + std::to_string(shards.back().end) +
         "},\n  \"weight_map\": {\n    " + map + "\n  }\n}\n";
}

Status AppendTarHeader(std::string_view name, uint64_t size, ByteSink* tar) {
  char h[kTarBlock] = {};
  name.substr(0, 99).copy(h, 99);
  std::memcpy(h + 100, "0000644", 8);
  std::memcpy(h + 108, "0000000", 8);
  std::memcpy(h + 116, "0000000", 8);
  NumberField(size, 12, h + 124);
  NumberField(0, 12, h + 136);  // mtime 0: the same bytes for the same model
  std::memset(h + 148, ' ', 8);
  h[156] = '0';
  std::memcpy(h + 257, "ustar", 6);
  std::memcpy(h + 263, "00", 2);
  unsigned sum = 0;
  for (const char c : h) sum += static_cast<unsigned char>(c);
  std::snprintf(h + 148, 8, "%06o", sum);
  return tar->Append(std::string_view(h, kTarBlock));
}

Status PadTarMember(uint64_t size, ByteSink* tar) {
  return tar->Append(std::string((kTarBlock - size % kTarBlock) % kTarBlock, '\0'));
}

// A shard as a tar member: its header, then its tensors' data copied from
// `data` a piece at a time.
Status AppendShard(const Shard& shard, const std::vector<std::pair<std::string, std::string>>& meta,
                   Spill* data, ByteSink* tar) {
  constexpr int64_t kPiece = int64_t{1} << 20;
  const std::string header = SafetensorsHeader(shard.tensors, meta);
  const uint64_t size = header.size() + static_cast<uint64_t>(shard.end - shard.begin);
  SOLVERD_RETURN_IF_ERROR(AppendTarHeader(shard.name, size, tar));
  SOLVERD_RETURN_IF_ERROR(tar->Append(header));
  std::string piece;
  for (int64_t at = shard.begin; at < shard.end; at += kPiece) {
    SOLVERD_RETURN_IF_ERROR(data->Read(at, std::min(kPiece, shard.end - at), &piece));
    SOLVERD_RETURN_IF_ERROR(tar->Append(piece));
  }
  return PadTarMember(size, tar);
}

}  // namespace

std::string GptqQuantizeConfig(const Options& o) {
  return "{" + GptqMembers(o) +
         ", \"model_name_or_path\": null, \"model_file_base_name\": \"model\"}";
}

Status AppendTarMember(std::string_view name, std::string_view bytes, ByteSink* tar) {
  SOLVERD_RETURN_IF_ERROR(AppendTarHeader(name, bytes.size(), tar));
  SOLVERD_RETURN_IF_ERROR(tar->Append(bytes));
  return PadTarMember(bytes.size(), tar);
}

Status FinishTar(ByteSink* tar) { return tar->Append(std::string(2 * kTarBlock, '\0')); }

Status PackGptqCheckpoint(const std::vector<TensorLayout>& tensors, Spill* data,
                          std::string_view config_json, const Options& options,
                          const std::vector<std::pair<std::string, std::string_view>>& passthrough,
                          int64_t max_shard_bytes, ByteSink* tar,
                          std::vector<std::string>* members) {
  members->clear();
  std::string config;
  SOLVERD_RETURN_IF_ERROR(AddQuantizationConfig(config_json, options, &config));
  auto add = [&](std::string_view name, std::string_view bytes) {
    members->emplace_back(name);
    return AppendTarMember(name, bytes, tar);
  };
  SOLVERD_RETURN_IF_ERROR(add("config.json", config));
  SOLVERD_RETURN_IF_ERROR(add("quantize_config.json", GptqQuantizeConfig(options) + "\n"));
  const std::vector<Shard> shards = PlanShards(tensors, max_shard_bytes);
  for (const Shard& shard : shards) {
    members->push_back(shard.name);
    SOLVERD_RETURN_IF_ERROR(AppendShard(shard, {{"format", "pt"}}, data, tar));
  }
  if (shards.size() > 1) {
    SOLVERD_RETURN_IF_ERROR(add("model.safetensors.index.json", ShardIndex(shards)));
  }
  for (const auto& [name, bytes] : passthrough) SOLVERD_RETURN_IF_ERROR(add(name, bytes));
  return FinishTar(tar);
}

}  // namespace solverd::quant::internal
