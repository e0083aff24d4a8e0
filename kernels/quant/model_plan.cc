// Planning a model's quantization: which tensors are layers to quantize
// (the include/exclude globs), whether the calibration file covers them,
// what each would cost in memory and bytes, and the budget the bit
// allocation works within. Nothing here quantizes (model.cc does).
#include <algorithm>
#include <cstdio>
#include <set>
#include <utility>

#include "quant/formats/gguf_llama.h"
#include "quant/calibration.h"
#include "quant/formats/json.h"
#include "quant/formats/model_format.h"
#include "quant/formats/model_writer.h"
#include "quant/layer_batch.h"
#include "quant/model.h"
#include "quant/quant_backend.h"
#include "quant/sequential_calibration.h"

namespace solverd::quant {
namespace {

Status Prefixed(const char* prefix, const Status& s) {
  return s.ok() ? s : Status(s.code(), prefix + s.message());
}

bool Selected(const TensorEntry& t, const ModelOptions& options) {
  if (!IsFloat(t.dtype) || t.shape.size() != 2 || t.elements() == 0) return false;
  bool included = options.include.empty();
  for (const std::string& glob : options.include) {
    if (glob == t.name) return true;  // named explicitly: no exclude applies
    included = included || GlobMatch(glob, t.name);
  }
  if (!included) return false;
  for (const std::string& glob : options.exclude) {
    if (GlobMatch(glob, t.name)) return false;
  }
  return true;
}

std::string ShortNumber(double v) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.4g", v);
  return text;
}

Status CheckAllocationOptions(const ModelOptions& o) {
  if (o.target_bits != 0 && o.target_bytes != 0) {
    return InvalidArgument("target_bits: set target_bits or target_bytes, not both");
  }
  if (!(o.target_bits >= 0) || !std::isfinite(o.target_bits)) {
    return InvalidArgument("target_bits: must be a positive number of bits per weight");
  }
  if (o.target_bytes < 0) return InvalidArgument("target_bytes: must be positive");
  if (!AllocatesBits(o)) return Status::Ok();
  if (WritesGgufF16(o)) {
    return InvalidArgument("gguf_type: F16 quantizes nothing, so it takes no bit allocation");
  }
  if (IsBlockwise(o.layer.method)) {
    return InvalidArgument(std::string("method: bit allocation needs a grid method (rtn, gptq, "
                                       "dmmv, hqq), not ") + MethodName(o.layer.method));
  }
  if (o.allocation_bits.empty()) return InvalidArgument("allocation_bits: empty");
  std::set<int> seen;
  for (const int b : o.allocation_bits) {
    if (WritesKQuants(o) && (b < 4 || b > 6)) {
      return InvalidArgument("allocation_bits: K-quant types are 4 (Q4_K), 5 (Q5_K) and 6 "
                             "(Q6_K) bits, not " + std::to_string(b));
    }
    if (b < 2 || b > 8) return InvalidArgument("allocation_bits: each must be 2..8");
    if (!seen.insert(b).second) {
      return InvalidArgument("allocation_bits: " + std::to_string(b) + " is listed twice");
    }
  }
  return Status::Ok();
}

// The selected layers' byte budget, and INVALID_ARGUMENT when even the
// narrowest width of every layer does not fit it.
Status PlanBudget(const ModelOptions& o, ModelPlan* plan) {
  if (!AllocatesBits(o)) return Status::Ok();
  int64_t all_bytes = 0, selected_bytes = 0, smallest = 0;
  for (const TensorEntry& t : plan->model.tensors) all_bytes += t.end - t.begin;
  const int narrowest = *std::min_element(o.allocation_bits.begin(), o.allocation_bits.end());
  Options narrow = o.layer;
  narrow.bits = narrowest;
  for (const TensorEntry& t : plan->selected) {
    selected_bytes += t.end - t.begin;
    smallest += internal::ExportLayerBytes(o.format, t.shape[0], t.shape[1], narrow);
  }
  const double weights = static_cast<double>(plan->selected_weights);
  const int64_t copied = all_bytes - selected_bytes;
  plan->layer_budget_bytes = o.target_bits != 0
                                 ? static_cast<int64_t>(o.target_bits * weights / 8.0)
                                 : o.target_bytes - copied;
  if (plan->layer_budget_bytes >= smallest) return Status::Ok();
  if (o.target_bits != 0) {
    return InvalidArgument("target_bits: " + ShortNumber(o.target_bits) +
                           " is below the smallest allocation, " +
                           ShortNumber(8.0 * static_cast<double>(smallest) / weights) +
                           " bits per weight (every layer at " + std::to_string(narrowest) +
                           " bits, scales included)");
  }
  return InvalidArgument("target_bytes: " + std::to_string(o.target_bytes) +
                         " is below the smallest output, " +
                         std::to_string(copied + smallest) + " bytes (" +
                         std::to_string(copied) + " copied, every layer at " +
                         std::to_string(narrowest) + " bits)");
}

// gguf_type and the layer options agree: K-quant types round on K-quant
// grids at their bits, the others do not.
Status CheckGgufType(const ModelOptions& o) {
  if (o.gguf_type != GgufType::kFromBits && o.format != ExportFormat::kGguf) {
    return InvalidArgument("gguf_type: only with format gguf");
  }
  if (!WritesKQuants(o)) {
    if (o.layer.k_quant) {
      return InvalidArgument("k_quant: K-quant grids are written by a K-quant gguf_type");
    }
    return Status::Ok();
  }
  if (!o.layer.k_quant) {
    return InvalidArgument(std::string("gguf_type: ") + GgufTypeName(o.gguf_type) +
                           " rounds on K-quant grids (k_quant)");
  }
  if (!AllocatesBits(o) && o.layer.bits != GgufTypeBits(o.gguf_type)) {
    return InvalidArgument(std::string("bits: gguf_type ") + GgufTypeName(o.gguf_type) + " is " +
                           std::to_string(GgufTypeBits(o.gguf_type)) + "-bit, not " +
                           std::to_string(o.layer.bits));
  }
  return Status::Ok();
}

// llama.cpp's rule for the blocks whose attn_v and ffn_down get more bits
// in its _M mixes: the first and last eighth, and every third between.
bool UsesMoreBits(int64_t block, int64_t blocks) {
  return block < blocks / 8 || block >= 7 * blocks / 8 || (block - blocks / 8) % 3 == 2;
}

// The bits of selected tensor `t` in a Q4_K_M file: 6 (Q6_K) for the
// output head and the chosen attn_v / ffn_down, 4 (Q4_K) otherwise. Names
// are llama.cpp's, so without its layout every layer is Q4_K.
int Q4KMBits(const ModelPlan& plan, const TensorEntry& t) {
  internal::GgufTensorPlan mapped;
  if (plan.gguf_layout == nullptr || !plan.gguf_layout->Map(t.name, &mapped).ok()) return 4;
  if (mapped.name == "output.weight") return 6;
  long long block = -1;
  char kind[32] = {};
  if (std::sscanf(mapped.name.c_str(), "blk.%lld.%31[a-z_].weight", &block, kind) != 2) return 4;
  const std::string k = kind;
  if ((k == "attn_v" || k == "ffn_down") && UsesMoreBits(block, plan.config.num_hidden_layers)) {
    return 6;
  }
  return 4;
}

// With calibration from tokens: whether the pass can calibrate tensor `t`
// for `method`, before it runs for hours.
Status CheckSequentialLayer(const TensorEntry& t, Method method) {
  if (method == Method::kDmmv) {
    return InvalidArgument("method dmmv needs rows of inputs, which the sequential pass from "
                           "calibration_tokens does not keep: send them in a calibration file");
  }
  if (NeedsCalibration(method) && !CalibratedBySequentialPass(t.name)) {
    return InvalidArgument("model: tensor " + JsonQuote(t.name) + " is selected, and the "
                           "sequential pass calibrates the decoder blocks' projections only: "
                           "exclude it, or quantize it with a method that needs no calibration");
  }
  return Status::Ok();
}

}  // namespace

const char* GgufTypeName(GgufType type) {
  switch (type) {
    case GgufType::kFromBits: return "from bits";
    case GgufType::kF16: return "F16";
    case GgufType::kQ4_K: return "Q4_K";
    case GgufType::kQ5_K: return "Q5_K";
    case GgufType::kQ6_K: return "Q6_K";
    case GgufType::kQ4_K_M: return "Q4_K_M";
  }
  return "?";
}

int GgufTypeBits(GgufType type) {
  switch (type) {
    case GgufType::kQ4_K:
    case GgufType::kQ4_K_M: return 4;
    case GgufType::kQ5_K: return 5;
    case GgufType::kQ6_K: return 6;
    default: return 0;
  }
}

const char* ExportFormatName(ExportFormat format) {
  switch (format) {
    case ExportFormat::kSolverd: return "solverd";
    case ExportFormat::kGptq: return "gptq";
    case ExportFormat::kGguf: return "gguf";
  }
  return "?";
}

std::vector<std::string> DefaultExcludes() { return {"*embed*", "*norm*", "lm_head.*"}; }

bool GlobMatch(std::string_view pattern, std::string_view name) {
  size_t p = 0, n = 0, star = std::string_view::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::string LayerName(std::string_view tensor_name) {
  constexpr std::string_view kSuffix = ".weight";
  if (tensor_name.size() > kSuffix.size() && tensor_name.ends_with(kSuffix)) {
    tensor_name.remove_suffix(kSuffix.size());
  }
  return std::string(tensor_name);
}

Status PlanModel(std::string_view model_bytes, std::string_view calibration_bytes,
                 const ModelOptions& options, ModelPlan* plan) {
  ModelInput model;
  SOLVERD_RETURN_IF_ERROR(Prefixed("model: ", ParseSafetensors(model_bytes, &model.weights)));
  return PlanModel(std::move(model), calibration_bytes, options, plan);
}

Status PlanModel(ModelInput model, std::string_view calibration_bytes,
                 const ModelOptions& options, ModelPlan* plan) {
  *plan = ModelPlan();
  plan->model = std::move(model.weights);
  plan->config = std::move(model.config);
  plan->config_json = model.config_json;
  plan->tokenizer_json = model.tokenizer_json;
  plan->passthrough = std::move(model.passthrough);
  plan->release_source = std::move(model.release_source);
  SOLVERD_RETURN_IF_ERROR(ValidateOptions(options.layer));
  SOLVERD_RETURN_IF_ERROR(CheckGgufType(options));
  SOLVERD_RETURN_IF_ERROR(CheckAllocationOptions(options));
  if (!calibration_bytes.empty()) {
    SOLVERD_RETURN_IF_ERROR(
        Prefixed("calibration: ", ParseSafetensors(calibration_bytes, &plan->calibration)));
  }
  if (options.format == ExportFormat::kGguf) {
    const std::string& type = plan->config.model_type;
    if (IsLlamaFamily(type)) {
      SOLVERD_RETURN_IF_ERROR(internal::LlamaGgufLayout::Create(
          plan->config, plan->tokenizer_json, plan->model, &plan->gguf_layout));
    } else {
      plan->notes.push_back(
          "gguf: tensors keep their own names, which llama.cpp does not load: " +
          (type.empty() ? std::string("a lone safetensors file has no config.json (name the "
                                      "checkpoint folder for llama.cpp's layout)")
                        : "llama.cpp's layout is written for model_type llama, mistral and "
                          "qwen2, not " + type));
    }
  }
  std::set<std::string> names;
  for (const TensorEntry& t : plan->model.tensors) names.insert(t.name);
  for (const TensorEntry& t : plan->model.tensors) {
    if (WritesGgufF16(options) || !Selected(t, options)) {
      SOLVERD_RETURN_IF_ERROR(internal::CheckExportCopy(options.format, t));
      continue;
    }
    const CalibrationEntries calibration = FindCalibration(plan->calibration, LayerName(t.name));
    if (!options.calibration_from_tokens) {
      SOLVERD_RETURN_IF_ERROR(CheckCalibration(calibration, t, options.layer.method));
    } else {
      SOLVERD_RETURN_IF_ERROR(CheckSequentialLayer(t, options.layer.method));
    }
    SOLVERD_RETURN_IF_ERROR(internal::CheckExportLayer(options.format, t, options));
    names.erase(t.name);  // the source is not written
    for (const std::string& added : internal::ExportTensorNames(options.format, t, options.layer)) {
      if (!names.insert(added).second) {
        return InvalidArgument("model: quantizing " + JsonQuote(t.name) + " would write " +
                               JsonQuote(added) + ", which already exists");
      }
    }
    plan->selected.push_back(t);
    plan->bits.push_back(options.gguf_type == GgufType::kQ4_K_M ? Q4KMBits(*plan, t)
                                                                : options.layer.bits);
    plan->selected_weights += t.elements();
    plan->largest_layer_bytes =
        std::max(plan->largest_layer_bytes,
                 MemoryBytes(t.shape[0], t.shape[1], calibration.HeldRows(), options.layer));
  }
  if (plan->selected.empty() && !WritesGgufF16(options)) {
    return InvalidArgument("include: selects no 2-D float tensor of the model (excluded by "
                           "default: embeddings, norms and lm_head)");
  }
  plan->largest_layer_bytes =
      std::max(plan->largest_layer_bytes,
               internal::BatchMemoryBytes(plan->selected_weights, options.layer));
  return PlanBudget(options, plan);
}

}  // namespace solverd::quant
