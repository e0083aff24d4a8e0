#include "quant/model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include "quant/calibration.h"
#include "quant/formats/json.h"
#include "quant/layer_batch.h"
#include "quant/formats/model_format.h"
#include "quant/formats/byte_sink.h"
#include "quant/formats/model_writer.h"
#include "quant/quant_backend.h"

namespace solverd::quant {

namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

Status Prefixed(const char* prefix, const Status& s) {
  return s.ok() ? s : Status(s.code(), prefix + s.message());
}

// Reads tensor `t`'s weights and its calibration into `layer`.
Status LoadLayer(const ModelPlan& plan, const TensorEntry& t, const Options& options,
                 Layer* layer) {
  layer->rows = t.shape[0];
  layer->cols = t.shape[1];
  SOLVERD_RETURN_IF_ERROR(Prefixed("model: ", ReadFloats(plan.model, t, &layer->weights)));
  if (plan.release_source) plan.release_source(plan.model.Bytes(t));
  const CalibrationEntries entries = FindCalibration(plan.calibration, LayerName(t.name));
  return LoadCalibration(plan.calibration, entries, options, layer);
}

// Progress over the whole job: while allocating, every layer is quantized
// once per candidate width before the final pass.
struct ModelProgress {
  ProgressSink* sink = nullptr;
  Clock::time_point start = Clock::now();
  double total_weights = 0;  // quantizations' weights in all passes
  double done_weights = 0;
  int64_t steps = 0;
  int64_t layers_total = 0;

  void Report(const std::string& stage, const LayerSummary& s) {
    done_weights += static_cast<double>(s.rows * s.cols);
    ++steps;
    if (sink == nullptr) return;
    Progress p;
    p.iteration = steps;
    p.objective = s.report.relative_output_error;
    p.residual = s.report.max_violation;
    p.elapsed_seconds = SecondsSince(start);
    p.fraction = done_weights / total_weights;
    p.stage = stage;
    p.extras = {{"layers_total", static_cast<double>(layers_total)},
                {"bits", static_cast<double>(s.bits)},
                {"weight_mse", s.report.weight_mse},
                {"layer_seconds", s.report.seconds}};
    sink->Report(p);
  }
};

// Quantizes a loaded layer of tensor `t` and measures it.
Status QuantizeTensor(const Device& device, StreamHandle stream, const TensorEntry& t,
                      const Layer& layer, const Options& options, const CancelToken* cancel,
                      QuantizedLayer* q, LayerSummary* summary) {
  SOLVERD_RETURN_IF_ERROR(CheckCancel(cancel));
  const Clock::time_point start = Clock::now();
  const Status s = QuantizeLayer(device, stream, layer, options, cancel, q);
  if (!s.ok()) return Status(s.code(), "layer " + JsonQuote(t.name) + ": " + s.message());
  internal::Summarize(t, layer, *q, options.threads, SecondsSince(start), summary);
  return Status::Ok();
}

// One batch of layers (layer_batch.h), quantized and measured, waiting to
// be written in file order; the buffers are reused from batch to batch.
struct LayerQueue {
  std::vector<Layer> layers;
  std::vector<QuantizedLayer> quantized;
  std::vector<LayerSummary> summaries;
  Layer stacked;
  QuantizedLayer stacked_out;
  size_t next = 0;  // the next to write

  bool empty() const { return next == layers.size(); }
};

// Quantizes plan.selected[first, first + length) into `queue`; a batch's
// time is shared among its layers by rows.
Status QuantizeBatch(const Device& device, StreamHandle stream, const ModelPlan& plan,
                     size_t first, size_t length, const Options& options,
                     const CancelToken* cancel, LayerQueue* queue) {
  queue->layers.resize(length);
  queue->quantized.resize(length);
  queue->summaries.assign(length, LayerSummary());
  queue->next = 0;
  for (size_t i = 0; i < length; ++i) {
    SOLVERD_RETURN_IF_ERROR(
        LoadLayer(plan, plan.selected[first + i], options, &queue->layers[i]));
  }
  if (length == 1) {
    return QuantizeTensor(device, stream, plan.selected[first], queue->layers[0], options,
                          cancel, &queue->quantized[0], &queue->summaries[0]);
  }
  SOLVERD_RETURN_IF_ERROR(CheckCancel(cancel));
  const Clock::time_point start = Clock::now();
  const Status s = internal::QuantizeStacked(device, stream, queue->layers, options, cancel,
                                             &queue->stacked, &queue->stacked_out,
                                             &queue->quantized);
  if (!s.ok()) {
    return Status(s.code(), "layers " + JsonQuote(plan.selected[first].name) + " to " +
                                JsonQuote(plan.selected[first + length - 1].name) + ": " +
                                s.message());
  }
  const double seconds = SecondsSince(start);
  for (size_t i = 0; i < length; ++i) {
    const Layer& layer = queue->layers[i];
    internal::Summarize(plan.selected[first + i], layer, queue->quantized[i], options.threads,
              seconds * static_cast<double>(layer.rows) /
                  static_cast<double>(queue->stacked.rows),
              &queue->summaries[i]);
    queue->summaries[i].batch_layers = static_cast<int>(length);
  }
  return Status::Ok();
}

// Allocation's first pass: every selected layer at every candidate width,
// then the widths with the least summed output error within the budget.
Status ChooseBits(const Device& device, StreamHandle stream, const ModelPlan& plan,
                  const ModelOptions& options, const CancelToken* cancel,
                  ModelProgress* progress, std::vector<std::vector<BitsCandidate>>* candidates,
                  std::vector<int>* bits) {
  Layer layer;  // both reused across layers (see QuantizedLayer::Reset)
  QuantizedLayer q;
  for (const TensorEntry& t : plan.selected) {
    SOLVERD_RETURN_IF_ERROR(LoadLayer(plan, t, options.layer, &layer));
    std::vector<BitsCandidate>& layer_candidates = candidates->emplace_back();
    for (const int b : options.allocation_bits) {
      Options o = options.layer;
      o.bits = b;
      LayerSummary summary;
      SOLVERD_RETURN_IF_ERROR(QuantizeTensor(device, stream, t, layer, o, cancel, &q, &summary));
      const LayerReport& r = summary.report;
      layer_candidates.push_back(
          {b, internal::ExportLayerBytes(options.format, layer.rows, layer.cols, o),
           options.allocation_error == AllocationError::kAbsolute
               ? r.output_error_squared
               : r.relative_output_error * r.relative_output_error,
           r.output_error_squared});
      progress->Report("allocation: " + t.name + " at " + std::to_string(b) + " bits", summary);
    }
  }
  std::vector<int> chosen;
  SOLVERD_RETURN_IF_ERROR(AllocateBits(*candidates, plan.layer_budget_bytes, &chosen));
  bits->clear();
  for (size_t l = 0; l < chosen.size(); ++l) bits->push_back((*candidates)[l][chosen[l]].bits);
  return Status::Ok();
}

// The writer's file into result->file, or into `path` (removed again if
// it cannot be written whole).
Status WriteOutput(const std::string& path, internal::ModelWriter* writer,
                   ModelResult* result) {
  if (path.empty()) {
    internal::StringSink sink(&result->file);
    SOLVERD_RETURN_IF_ERROR(writer->Finish(&sink));
    result->file_bytes = sink.size();
    return Status::Ok();
  }
  return internal::WriteFile(
      path, [&](internal::ByteSink* file) { return writer->Finish(file); },
      &result->file_bytes);
}

}  // namespace

Status QuantizeModel(const Device& device, StreamHandle stream, const ModelPlan& plan,
                     const ModelOptions& options, ProgressSink* sink, const CancelToken* cancel,
                     ModelResult* result) {
  *result = ModelResult();
  result->notes = plan.notes;
  const bool allocating = plan.layer_budget_bytes > 0;
  ModelProgress progress;
  progress.sink = sink;
  progress.layers_total = static_cast<int64_t>(plan.selected.size());
  progress.total_weights =
      static_cast<double>(plan.selected_weights) *
      static_cast<double>(1 + (allocating ? options.allocation_bits.size() : 0));
  std::vector<std::vector<BitsCandidate>> candidates;
  std::vector<int> bits = plan.bits;
  if (allocating) {
    SOLVERD_RETURN_IF_ERROR(
        ChooseBits(device, stream, plan, options, cancel, &progress, &candidates, &bits));
    result->layer_budget_bytes = plan.layer_budget_bytes;
  }
  std::unique_ptr<internal::ModelWriter> writer =
      internal::NewModelWriter(options, plan);
  if (!options.output_path.empty()) {
    SOLVERD_RETURN_IF_ERROR(writer->SpillTo(internal::FolderOf(options.output_path)));
  }
  for (const auto& [key, value] : plan.model.metadata) writer->AddMetadata(key, value);
  int64_t quantized_bytes = 0;
  size_t next = 0;  // index into plan.selected, which is in file order
  LayerQueue queue;
  for (const TensorEntry& t : plan.model.tensors) {
    result->bytes_before += t.end - t.begin;
    if (next == plan.selected.size() || plan.selected[next].name != t.name) {
      writer->AddCopied(t, plan.model.Bytes(t));
      if (plan.release_source) plan.release_source(plan.model.Bytes(t));
      result->bytes_after += t.end - t.begin;
      ++result->copied_tensors;
      continue;
    }
    Options o = options.layer;
    o.bits = bits[next];
    const auto done = plan.done_layers.find(t.name);
    if (done == plan.done_layers.end() && queue.empty()) {
      // No batch may run into a layer that is done.
      const size_t length =
          plan.done_layers.empty() ? internal::BatchLength(plan.selected, bits, next, o) : 1;
      SOLVERD_RETURN_IF_ERROR(QuantizeBatch(device, stream, plan, next, length, o, cancel, &queue));
    }
    const bool was_done = done != plan.done_layers.end();
    const QuantizedLayer& q = was_done ? done->second.layer : queue.quantized[queue.next];
    LayerSummary summary =
        was_done ? done->second.summary : std::move(queue.summaries[queue.next++]);
    if (allocating) summary.candidates = candidates[next];
    internal::LayerDescription d;
    d.layer = LayerName(t.name);
    d.source = t.name;
    d.source_dtype = t.dtype;
    d.rows = summary.rows;
    d.cols = summary.cols;
    d.method = o.method;
    d.bits = q.bits;
    d.group_size = q.group_size;
    d.symmetric = o.symmetric;
    d.double_quant = o.double_quant;
    d.k_quant = o.k_quant;
    SOLVERD_RETURN_IF_ERROR(writer->AddLayer(d, q, &summary.bytes_after));
    result->bytes_after += summary.bytes_after;
    quantized_bytes += summary.bytes_after;
    progress.Report(t.name, result->layers.emplace_back(std::move(summary)));
    ++next;
  }
  result->average_bits = plan.selected_weights == 0 ? 0 :  // gguf F16: nothing quantized
      8.0 * static_cast<double>(quantized_bytes) / static_cast<double>(plan.selected_weights);
  SOLVERD_RETURN_IF_ERROR(WriteOutput(options.output_path, writer.get(), result));
  result->output_files = writer->members();
  result->seconds = SecondsSince(progress.start);
  return Status::Ok();
}

}  // namespace solverd::quant
