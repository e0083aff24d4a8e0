#include "quant/formats/model_writer.h"

#include "quant/formats/gguf_blocks.h"
#include "quant/formats/json.h"
#include "quant/quant_backend.h"

namespace solverd::quant::internal {
namespace {

// solverd's own layout: WriteLayer() per layer, metadata describing each.
class SolverdWriter final : public ModelWriter {
 public:
  Status SpillTo(const std::string& dir) override { return writer_.SpillTo(dir); }
  void AddMetadata(const std::string& key, const std::string& value) override {
    writer_.AddMetadata(key, value);
  }
  void AddCopied(const TensorEntry& t, std::string_view bytes) override {
    writer_.Add(t.name, t.dtype, t.shape, bytes);
  }
  Status AddLayer(const LayerDescription& d, const QuantizedLayer& q, int64_t* bytes) override {
    *bytes = WriteLayer(d, q, &writer_);
    return Status::Ok();
  }
  Status Finish(ByteSink* out) override { return writer_.Finish(out); }

 private:
  SafetensorsWriter writer_;
};

}  // namespace

std::unique_ptr<ModelWriter> NewModelWriter(const ModelOptions& options, const ModelPlan& plan) {
  switch (options.format) {
    case ExportFormat::kGptq: return NewGptqWriter(options, plan);
    case ExportFormat::kGguf: return NewGgufWriter(plan.gguf_layout, WritesGgufF16(options));
    default: return std::make_unique<SolverdWriter>();
  }
}

Status CheckExportLayer(ExportFormat format, const TensorEntry& t, const ModelOptions& options) {
  const Method method = options.layer.method;
  if (format != ExportFormat::kSolverd && (IsBlockwise(method) || method == Method::kHqq)) {
    return InvalidArgument(std::string("export: the ") +
                           ::solverd::quant::ExportFormatName(format) +
                           " layout holds integer grids (rtn, gptq, dmmv), not " +
                           MethodName(method));
  }
  switch (format) {
    case ExportFormat::kGptq: return CheckGptqLayer(t, options);
    case ExportFormat::kGguf: return CheckGgufLayer(t, options);
    default: return Status::Ok();
  }
}

Status CheckExportCopy(ExportFormat format, const TensorEntry& t) {
  return format == ExportFormat::kGguf ? CheckGgufCopy(t) : Status::Ok();
}

int64_t ExportLayerBytes(ExportFormat format, int64_t rows, int64_t cols, const Options& layer) {
  if (format == ExportFormat::kGguf) return GgufLayerBytes(rows, cols, layer.bits, layer.k_quant);
  return GridLayerBytes(rows, cols, layer.bits, GroupColumns(layer, cols));
}

std::vector<std::string> ExportTensorNames(ExportFormat format, const TensorEntry& t,
                                           const Options& options) {
  const std::string layer = LayerName(t.name);
  switch (format) {
    case ExportFormat::kGptq:
      return {layer + ".qweight", layer + ".qzeros", layer + ".scales", layer + ".g_idx"};
    case ExportFormat::kGguf: return {t.name};
    default: return LayerTensorNames(layer, options);
  }
}

}  // namespace solverd::quant::internal
