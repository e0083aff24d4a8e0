#include "quant/formats/gptq_checkpoint.h"

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

// The weights as shards of at most `max_bytes` of tensor data each (a
// larger tensor alone in its shard), with their index when more than one.
Status Shard(std::string_view weights, int64_t max_bytes, std::vector<std::string>* names,
             std::vector<std::string>* files) {
  SafetensorsFile parsed;
  SOLVERD_RETURN_IF_ERROR(ParseSafetensors(weights, &parsed));
  std::vector<std::vector<const TensorEntry*>> shards(1);
  int64_t in_shard = 0, total = 0;
  for (const TensorEntry& t : parsed.tensors) {
    const int64_t bytes = t.end - t.begin;
    if (in_shard > 0 && in_shard + bytes > max_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(&t);
    in_shard += bytes;
    total += bytes;
  }
  if (shards.size() == 1) {
    names->push_back("model.safetensors");
    files->emplace_back(weights);
    return Status::Ok();
  }
  std::string map;
  for (size_t s = 0; s < shards.size(); ++s) {
    char name[64];
    std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    SafetensorsWriter writer;
    writer.AddMetadata("format", "pt");
    for (const TensorEntry* t : shards[s]) {
      writer.Add(t->name, t->dtype, t->shape, std::string(parsed.Bytes(*t)));
      map += (map.empty() ? "" : ",\n    ") + JsonQuote(t->name) + ": " + JsonQuote(name);
    }
    names->push_back(name);
    files->push_back(writer.Finish());
  }
  names->push_back("model.safetensors.index.json");
  files->push_back("{\n  \"metadata\": {\"total_size\": " + std::to_string(total) +
                   "},\n  \"weight_map\": {\n    " + map + "\n  }\n}\n");
  return Status::Ok();
}

}  // namespace

std::string GptqQuantizeConfig(const Options& o) {
  return "{" + GptqMembers(o) +
         ", \"model_name_or_path\": null, \"model_file_base_name\": \"model\"}";
}

void AppendTarMember(std::string_view name, std::string_view bytes, std::string* tar) {
  char h[kTarBlock] = {};
  name.substr(0, 99).copy(h, 99);
  std::memcpy(h + 100, "0000644", 8);
  std::memcpy(h + 108, "0000000", 8);
  std::memcpy(h + 116, "0000000", 8);
  NumberField(bytes.size(), 12, h + 124);
  NumberField(0, 12, h + 136);  // mtime 0: the same bytes for the same model
  std::memset(h + 148, ' ', 8);
  h[156] = '0';
  std::memcpy(h + 257, "ustar", 6);
  std::memcpy(h + 263, "00", 2);
  unsigned sum = 0;
  for (const char c : h) sum += static_cast<unsigned char>(c);
  std::snprintf(h + 148, 8, "%06o", sum);
  tar->append(h, kTarBlock);
  tar->append(bytes);
  tar->append((kTarBlock - bytes.size() % kTarBlock) % kTarBlock, '\0');
}

void FinishTar(std::string* tar) { tar->append(2 * kTarBlock, '\0'); }

Status PackGptqCheckpoint(std::string_view weights, std::string_view config_json,
                          const Options& options,
                          const std::vector<std::pair<std::string, std::string_view>>& passthrough,
                          int64_t max_shard_bytes, std::string* tar,
                          std::vector<std::string>* members) {
  tar->clear();
  members->clear();
  std::string config;
  SOLVERD_RETURN_IF_ERROR(AddQuantizationConfig(config_json, options, &config));
  std::vector<std::string> names = {"config.json", "quantize_config.json"};
  std::vector<std::string> files = {config, GptqQuantizeConfig(options) + "\n"};
  SOLVERD_RETURN_IF_ERROR(Shard(weights, max_shard_bytes, &names, &files));
  for (size_t k = 0; k < names.size(); ++k) {
    AppendTarMember(names[k], files[k], tar);
    members->push_back(names[k]);
  }
  for (const auto& [name, bytes] : passthrough) {
    AppendTarMember(name, bytes, tar);
    members->push_back(name);
  }
  FinishTar(tar);
  return Status::Ok();
}

}  // namespace solverd::quant::internal
