#include "quant/model.h"

#include <algorithm>
#include <chrono>
#include <set>

#include "quant/json.h"
#include "quant/model_format.h"

namespace solverd::quant {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

Status Prefixed(const char* prefix, const Status& s) {
  return s.ok() ? s : Status(s.code(), prefix + s.message());
}

bool Selected(const TensorEntry& t, const ModelOptions& options) {
  if (!IsFloat(t.dtype) || t.shape.size() != 2 || t.elements() == 0) return false;
  bool included = options.include.empty();
  for (const std::string& glob : options.include) included = included || GlobMatch(glob, t.name);
  if (!included) return false;
  for (const std::string& glob : options.exclude) {
    if (GlobMatch(glob, t.name)) return false;
  }
  return true;
}

// The calibration inputs of `t`'s layer, checked against its shape.
Status CheckInputs(const ModelPlan& plan, const TensorEntry& t, const Options& options) {
  const std::string name = LayerName(t.name) + ".inputs";
  const TensorEntry* in = plan.calibration.Find(name);
  if (in == nullptr) {
    if (!NeedsCalibration(options.method)) return Status::Ok();
    return InvalidArgument(std::string("calibration: method ") + MethodName(options.method) +
                           " needs tensor " + JsonQuote(name) + " for " + JsonQuote(t.name));
  }
  if (!IsFloat(in->dtype) || in->shape.size() != 2 || in->shape[1] != t.shape[1] ||
      in->shape[0] < 1) {
    return InvalidArgument("calibration: tensor " + JsonQuote(name) +
                           " must be a float [tokens, " + std::to_string(t.shape[1]) +
                           "] matrix");
  }
  return Status::Ok();
}

Status LoadLayer(const ModelPlan& plan, const TensorEntry& t, Layer* layer) {
  layer->rows = t.shape[0];
  layer->cols = t.shape[1];
  SOLVERD_RETURN_IF_ERROR(ReadFloats(plan.model, t, &layer->weights));
  const TensorEntry* in = plan.calibration.Find(LayerName(t.name) + ".inputs");
  layer->tokens = 0;
  layer->inputs.clear();
  if (in != nullptr) {
    layer->tokens = in->shape[0];
    SOLVERD_RETURN_IF_ERROR(ReadFloats(plan.calibration, *in, &layer->inputs));
  }
  return Status::Ok();
}

void ReportLayer(ProgressSink* sink, const ModelPlan& plan, const ModelResult& result,
                 int64_t weights_done, Clock::time_point start) {
  if (sink == nullptr) return;
  const LayerSummary& s = result.layers.back();
  Progress p;
  p.iteration = static_cast<int64_t>(result.layers.size());
  p.objective = s.report.relative_output_error;
  p.residual = s.report.max_violation;
  p.elapsed_seconds = SecondsSince(start);
  p.fraction = static_cast<double>(weights_done) / static_cast<double>(plan.selected_weights);
  p.stage = s.name;
  p.extras = {{"layers_total", static_cast<double>(plan.selected.size())},
              {"weight_mse", s.report.weight_mse},
              {"layer_seconds", s.report.seconds}};
  sink->Report(p);
}

}  // namespace

std::vector<std::string> DefaultExcludes() { return {"*embed*", "*norm*"}; }

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
  *plan = ModelPlan();
  SOLVERD_RETURN_IF_ERROR(Prefixed("", ValidateOptions(options.layer)));
  SOLVERD_RETURN_IF_ERROR(Prefixed("model: ", ParseSafetensors(model_bytes, &plan->model)));
  if (!calibration_bytes.empty()) {
    SOLVERD_RETURN_IF_ERROR(
        Prefixed("calibration: ", ParseSafetensors(calibration_bytes, &plan->calibration)));
  }
  std::set<std::string> names;
  for (const TensorEntry& t : plan->model.tensors) names.insert(t.name);
  for (const TensorEntry& t : plan->model.tensors) {
    if (!Selected(t, options)) continue;
    SOLVERD_RETURN_IF_ERROR(CheckInputs(*plan, t, options.layer));
    for (const std::string& added : internal::LayerTensorNames(LayerName(t.name), options.layer)) {
      if (!names.insert(added).second) {
        return InvalidArgument("model: quantizing " + JsonQuote(t.name) + " would write " +
                               JsonQuote(added) + ", which already exists");
      }
    }
    plan->selected.push_back(t);
    plan->selected_weights += t.elements();
    const TensorEntry* in = plan->calibration.Find(LayerName(t.name) + ".inputs");
    plan->largest_layer_bytes = std::max(
        plan->largest_layer_bytes,
        MemoryBytes(t.shape[0], t.shape[1], in != nullptr ? in->shape[0] : 0, options.layer));
  }
  if (plan->selected.empty()) {
    return InvalidArgument("include: selects no 2-D float tensor of the model (excluded by "
                           "default: embeddings and norms)");
  }
  return Status::Ok();
}

Status QuantizeModel(const Device& device, StreamHandle stream, const ModelPlan& plan,
                     const ModelOptions& options, ProgressSink* sink, const CancelToken* cancel,
                     ModelResult* result) {
  *result = ModelResult();
  const Clock::time_point start = Clock::now();
  SafetensorsWriter writer;
  for (const auto& [key, value] : plan.model.metadata) writer.AddMetadata(key, value);
  int64_t weights_done = 0, quantized_bytes = 0;
  std::set<std::string> selected;
  for (const TensorEntry& t : plan.selected) selected.insert(t.name);
  for (const TensorEntry& t : plan.model.tensors) {
    result->bytes_before += t.end - t.begin;
    if (selected.count(t.name) == 0) {
      writer.Add(t.name, t.dtype, t.shape, std::string(plan.model.Bytes(t)));
      result->bytes_after += t.end - t.begin;
      ++result->copied_tensors;
      continue;
    }
    SOLVERD_RETURN_IF_ERROR(CheckCancel(cancel));
    Layer layer;
    SOLVERD_RETURN_IF_ERROR(Prefixed("model: ", LoadLayer(plan, t, &layer)));
    QuantizedLayer q;
    const Clock::time_point layer_start = Clock::now();
    const Status s = QuantizeLayer(device, stream, layer, options.layer, cancel, &q);
    if (!s.ok()) return Status(s.code(), "layer " + JsonQuote(t.name) + ": " + s.message());
    LayerSummary& summary = result->layers.emplace_back();
    summary.report.seconds = SecondsSince(layer_start);
    MeasureLayer(layer, q, options.layer.threads, &summary.report);
    internal::LayerDescription d;
    d.layer = LayerName(t.name);
    d.source = t.name;
    d.source_dtype = t.dtype;
    d.rows = layer.rows;
    d.cols = layer.cols;
    d.method = options.layer.method;
    d.bits = q.bits;
    d.group_size = q.group_size;
    d.symmetric = options.layer.symmetric;
    d.double_quant = options.layer.double_quant;
    summary.name = t.name;
    summary.rows = layer.rows;
    summary.cols = layer.cols;
    summary.tokens = layer.tokens;
    summary.bits = q.bits;
    summary.group_size = q.group_size;
    summary.bytes_before = t.end - t.begin;
    summary.bytes_after = internal::WriteLayer(d, q, &writer);
    result->bytes_after += summary.bytes_after;
    quantized_bytes += summary.bytes_after;
    weights_done += t.elements();
    ReportLayer(sink, plan, *result, weights_done, start);
  }
  result->average_bits =
      8.0 * static_cast<double>(quantized_bytes) / static_cast<double>(plan.selected_weights);
  result->file = writer.Finish();
  result->seconds = SecondsSince(start);
  return Status::Ok();
}

Status DequantizeModel(std::string_view quantized, std::string* out) {
  SafetensorsFile file;
  SOLVERD_RETURN_IF_ERROR(ParseSafetensors(quantized, &file));
  SafetensorsWriter writer;
  std::set<std::string> consumed;
  std::vector<internal::LayerDescription> layers;
  const std::string prefix = internal::kLayerMetadataPrefix;
  for (const auto& [key, value] : file.metadata) {
    if (key.rfind(prefix, 0) != 0) {
      writer.AddMetadata(key, value);
      continue;
    }
    internal::LayerDescription& d = layers.emplace_back();
    SOLVERD_RETURN_IF_ERROR(internal::ParseDescription(key.substr(prefix.size()), value, &d));
    Options o;
    o.method = d.method;
    o.double_quant = d.double_quant;
    for (const std::string& n : internal::LayerTensorNames(d.layer, o)) consumed.insert(n);
  }
  for (const internal::LayerDescription& d : layers) {
    std::vector<float> weights;
    SOLVERD_RETURN_IF_ERROR(internal::ReadLayer(file, d, &weights));
    writer.Add(d.source, DType::kF32, {d.rows, d.cols}, FloatsToBytes(weights));
  }
  for (const TensorEntry& t : file.tensors) {
    if (consumed.count(t.name) == 0) {
      writer.Add(t.name, t.dtype, t.shape, std::string(file.Bytes(t)));
    }
  }
  *out = writer.Finish();
  return Status::Ok();
}

}  // namespace solverd::quant
