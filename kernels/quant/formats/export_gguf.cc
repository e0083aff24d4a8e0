// GGUF v3 files (model_writer.h): header, metadata, tensor infos, then the
// tensor data, each tensor at a multiple of the alignment. With a
// LlamaGgufLayout the tensors take llama.cpp's names and row order, and
// the metadata its architecture and vocabulary.
#include <cstring>
#include <utility>

#include "quant/half.h"
#include "quant/kquant_math.h"
#include "quant/formats/gguf.h"
#include "quant/formats/gguf_blocks.h"
#include "quant/formats/gguf_llama.h"
#include "quant/formats/json.h"
#include "quant/formats/model_writer.h"

namespace solverd::quant::internal {
namespace {

constexpr uint32_t kGgufVersion = 3;
constexpr uint64_t kAlignment = 32;
constexpr int64_t kBlock = kGgufSmallBlock;

bool GgmlTypeOf(DType dtype, uint32_t* type) {
  switch (dtype) {
    case DType::kF32: *type = kGgmlF32; return true;
    case DType::kF16: *type = kGgmlF16; return true;
    case DType::kBF16: *type = kGgmlBF16; return true;
    case DType::kF64: *type = kGgmlF64; return true;
    case DType::kI8: *type = kGgmlI8; return true;
    case DType::kI16: *type = kGgmlI16; return true;
    case DType::kI32: *type = kGgmlI32; return true;
    case DType::kI64: *type = kGgmlI64; return true;
    default: return false;
  }
}

// A float tensor's bytes as F32, or as F16 (rounded to nearest even).
// REQUIRES: IsFloat(t.dtype).
std::string FloatsOf(const TensorEntry& t, std::string_view bytes, bool half) {
  std::vector<float> values;
  FloatsFromBytes(t.dtype, bytes, t.elements(), &values);
  return half ? HalvesToBytes(values) : FloatsToBytes(values);
}

class GgufWriter final : public ModelWriter {
 public:
  GgufWriter(std::shared_ptr<const LlamaGgufLayout> layout, bool f16)
      : layout_(std::move(layout)), f16_(f16) {}

  Status SpillTo(const std::string& dir) override { return data_.UseFileIn(dir); }
  void AddMetadata(const std::string& key, const std::string& value) override {
    source_metadata_.emplace_back("solverd.source." + key, value);
  }
  void AddCopied(const TensorEntry& t, std::string_view bytes) override {
    uint32_t type = kGgmlF32;
    GgmlTypeOf(t.dtype, &type);  // checked at plan time
    GgufTensorPlan plan;
    plan.name = t.name;
    // Every tensor has a place: LlamaGgufLayout::Create checked them.
    if (layout_ != nullptr && !layout_->Map(t.name, &plan).ok()) return;
    if (!plan.kept) return;
    std::string data(bytes);
    if (IsFloat(t.dtype) && (plan.to_f32 || (f16_ && t.shape.size() < 2))) {
      data = FloatsOf(t, bytes, /*half=*/false);
      type = kGgmlF32;
    } else if (IsFloat(t.dtype) && f16_) {
      data = FloatsOf(t, bytes, /*half=*/true);
      type = kGgmlF16;
    }
    if (plan.rope_heads > 0) data = PermuteRopeRows(data, t.shape[0], plan.rope_heads);
    Add(plan.name, type, t.shape, data);
  }
  Status AddLayer(const LayerDescription& d, const QuantizedLayer& q, int64_t* bytes) override;
  Status Finish(ByteSink* out) override;

 private:
  struct Tensor {
    std::string name;
    uint32_t type;
    std::vector<int64_t> shape;  // safetensors order (outermost first)
    uint64_t offset;             // in the data section
  };
  // Each tensor's data starts at a multiple of the alignment.
  void Add(std::string name, uint32_t type, std::vector<int64_t> shape, std::string_view bytes) {
    const uint64_t at = static_cast<uint64_t>(data_.size());
    (void)data_.Append(std::string((kAlignment - at % kAlignment) % kAlignment, '\0'));
    tensors_.push_back({std::move(name), type, std::move(shape),
                        static_cast<uint64_t>(data_.size())});
    (void)data_.Append(bytes);  // an error is kept for Finish()
  }

  const std::shared_ptr<const LlamaGgufLayout> layout_;  // null: names as they are
  const bool f16_;
  std::vector<std::pair<std::string, std::string>> source_metadata_;
  std::vector<Tensor> tensors_;
  Spill data_;
};

Status GgufWriter::AddLayer(const LayerDescription& d, const QuantizedLayer& q, int64_t* bytes) {
  std::string data;
  AppendGgufBlocks(q, d.rows, d.cols, d.k_quant, &data);
  *bytes = static_cast<int64_t>(data.size());
  GgufTensorPlan plan;
  plan.name = d.source;
  if (layout_ != nullptr) SOLVERD_RETURN_IF_ERROR(layout_->Map(d.source, &plan));
  // Each row is whole blocks, so the rows move as they would unquantized.
  if (plan.rope_heads > 0) data = PermuteRopeRows(data, d.rows, plan.rope_heads);
  Add(plan.name, GgmlTypeOfLayer(q.bits, d.k_quant), {d.rows, d.cols}, data);
  return Status::Ok();
}

Status GgufWriter::Finish(ByteSink* out) {
  GgufMetadata kv;
  kv.Uint32("general.alignment", kAlignment);
  kv.String("general.quantized_by", "solverd");
  if (layout_ != nullptr) layout_->AddMetadata(&kv);
  for (const auto& [key, value] : source_metadata_) kv.String(key, value);
  std::string header("GGUF");
  PutLittleEndian<uint32_t>(kGgufVersion, &header);
  PutLittleEndian<uint64_t>(tensors_.size(), &header);
  PutLittleEndian<uint64_t>(kv.count(), &header);
  header.append(kv.bytes());
  for (const Tensor& t : tensors_) {
    PutGgufString(t.name, &header);
    const size_t dims = t.shape.empty() ? 1 : t.shape.size();
    PutLittleEndian<uint32_t>(static_cast<uint32_t>(dims), &header);
    if (t.shape.empty()) PutLittleEndian<uint64_t>(1, &header);
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) {
      PutLittleEndian<uint64_t>(*it, &header);
    }
    PutLittleEndian<uint32_t>(t.type, &header);
    PutLittleEndian<uint64_t>(t.offset, &header);
  }
  header.resize((header.size() + kAlignment - 1) / kAlignment * kAlignment, '\0');
  tensors_.clear();
  SOLVERD_RETURN_IF_ERROR(out->Append(header));
  return data_.MoveTo(out);
}

}  // namespace

std::unique_ptr<ModelWriter> NewGgufWriter(std::shared_ptr<const LlamaGgufLayout> layout,
                                           bool f16) {
  return std::make_unique<GgufWriter>(std::move(layout), f16);
}

Status CheckGgufLayer(const TensorEntry& t, const ModelOptions& options) {
  const Options& o = options.layer;
  const bool allocating = AllocatesBits(options);
  const std::vector<int> widths = allocating ? options.allocation_bits : std::vector<int>{o.bits};
  if (o.k_quant) {
    if (t.shape[1] % kSuperBlock != 0) {
      return InvalidArgument("export: tensor " + JsonQuote(t.name) + ": K-quant super-blocks "
                             "are 256 weights of a row, and its rows have " +
                             std::to_string(t.shape[1]) + " (exclude it, or take Q4_0 / Q8_0)");
    }
    return Status::Ok();  // the K-quant grids are the layer's own (ValidateOptions)
  }
  for (const int bits : widths) {
    if (bits != 4 && bits != 8) {
      return InvalidArgument("export: the gguf layout holds 4-bit (Q4_0) and 8-bit (Q8_0) "
                             "layers, not " + std::to_string(bits) + " bits" +
                             (allocating ? " (allocation_bits)" : "") +
                             "; gguf_type takes the K-quants");
    }
  }
  if (!o.symmetric || o.group_size != kBlock) {
    return InvalidArgument("export: the gguf layout (Q4_0, Q8_0) needs symmetric grids with "
                           "group_size 32");
  }
  if (t.shape[1] % kBlock != 0) {
    return InvalidArgument("export: tensor " + JsonQuote(t.name) + ": gguf blocks are 32 "
                           "weights of a row, and its rows have " + std::to_string(t.shape[1]));
  }
  return Status::Ok();
}

Status CheckGgufCopy(const TensorEntry& t) {
  uint32_t type;
  if (GgmlTypeOf(t.dtype, &type)) return Status::Ok();
  return InvalidArgument("export: tensor " + JsonQuote(t.name) + " has dtype " +
                         DTypeName(t.dtype) + ", which gguf cannot hold");
}

}  // namespace solverd::quant::internal
