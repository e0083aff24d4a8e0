#include "quant/formats/model_format.h"

#include <cstring>
#include <set>

#include "quant/blockwise.h"
#include "quant/formats/json.h"
#include "quant/formats/packing.h"
#include "quant/model.h"
#include "quant/quant_backend.h"

namespace solverd::quant::internal {
namespace {

Status LayerError(const std::string& layer, const std::string& what) {
  return InvalidArgument("layer " + JsonQuote(layer) + ": " + what);
}

// The tensor `name` with the given dtype and element count, or an error.
Status Expect(const SafetensorsFile& file, const std::string& layer, const std::string& name,
              DType dtype, int64_t elements, const TensorEntry** out) {
  *out = file.Find(name);
  if (*out == nullptr) return LayerError(layer, "missing tensor " + JsonQuote(name));
  if ((*out)->dtype != dtype || (*out)->elements() != elements) {
    return LayerError(layer, "tensor " + JsonQuote(name) + " has the wrong dtype or size");
  }
  return Status::Ok();
}

std::vector<float> F32(const SafetensorsFile& file, const TensorEntry& t) {
  std::vector<float> v;
  (void)ReadFloats(file, t, &v);  // dtype checked by Expect
  return v;
}

}  // namespace

std::vector<std::string> LayerTensorNames(const std::string& layer, const Options& options) {
  if (!IsBlockwise(options.method)) {
    return {layer + ".qweight", layer + ".scales", layer + ".zeros"};
  }
  if (options.double_quant) {
    return {layer + ".qweight", layer + ".codebook", layer + ".absmax_codes",
            layer + ".absmax_scales", layer + ".absmax_offset"};
  }
  return {layer + ".qweight", layer + ".codebook", layer + ".absmax"};
}

int64_t GridLayerBytes(int64_t rows, int64_t cols, int bits, int64_t group_size) {
  const int64_t groups = GroupCount(cols, group_size);
  return rows * PackedRowBytes(cols, bits) + 2 * rows * groups * 2;  // fp16 scales, zeros
}

int64_t WriteLayer(const LayerDescription& d, const QuantizedLayer& q, SafetensorsWriter* writer) {
  std::string packed = PackCodes(q.codes, d.rows, d.cols, q.bits);
  int64_t bytes = static_cast<int64_t>(packed.size());
  writer->Add(d.layer + ".qweight", DType::kU8, {d.rows, PackedRowBytes(d.cols, q.bits)},
              std::move(packed));
  auto add_floats = [&](const std::string& name, DType dtype, const std::vector<float>& v,
                        std::vector<int64_t> shape) {
    std::string b = dtype == DType::kF16 ? HalvesToBytes(v) : FloatsToBytes(v);
    bytes += static_cast<int64_t>(b.size());
    writer->Add(d.layer + name, dtype, std::move(shape), std::move(b));
  };
  if (!IsBlockwise(d.method)) {
    const int64_t groups = static_cast<int64_t>(q.scales.size()) / d.rows;
    add_floats(".scales", DType::kF16, q.scales, {d.rows, groups});
    add_floats(".zeros", DType::kF16, q.zeros, {d.rows, groups});
  } else {
    add_floats(".codebook", DType::kF32, q.codebook, {static_cast<int64_t>(q.codebook.size())});
    if (d.double_quant) {
      std::string codes(q.absmax_codes.begin(), q.absmax_codes.end());
      const auto blocks = static_cast<int64_t>(codes.size());
      bytes += blocks;
      writer->Add(d.layer + ".absmax_codes", DType::kU8, {blocks}, std::move(codes));
      add_floats(".absmax_scales", DType::kF32, q.absmax_scales,
                 {static_cast<int64_t>(q.absmax_scales.size())});
      add_floats(".absmax_offset", DType::kF32, {q.absmax_offset}, {1});
    } else {
      add_floats(".absmax", DType::kF32, q.absmax, {static_cast<int64_t>(q.absmax.size())});
    }
  }
  writer->AddMetadata(kLayerMetadataPrefix + d.layer, DescriptionJson(d));
  return bytes;
}

Status ReadLayer(const SafetensorsFile& file, const LayerDescription& d,
                 std::vector<float>* weights) {
  const TensorEntry* t = nullptr;
  SOLVERD_RETURN_IF_ERROR(Expect(file, d.layer, d.layer + ".qweight", DType::kU8,
                                 d.rows * PackedRowBytes(d.cols, d.bits), &t));
  QuantizedLayer q;
  q.bits = d.bits;
  q.group_size = d.group_size;
  q.codes = UnpackCodes(file.Bytes(*t), d.rows, d.cols, d.bits);
  if (d.group_size < 1) return LayerError(d.layer, "group_size must be >= 1");
  if (!IsBlockwise(d.method)) {
    const int64_t groups = (d.cols + d.group_size - 1) / d.group_size;
    const TensorEntry *scales_t = nullptr, *zeros_t = nullptr;
    SOLVERD_RETURN_IF_ERROR(
        Expect(file, d.layer, d.layer + ".scales", DType::kF16, d.rows * groups, &scales_t));
    SOLVERD_RETURN_IF_ERROR(
        Expect(file, d.layer, d.layer + ".zeros", DType::kF16, d.rows * groups, &zeros_t));
    q.scales = F32(file, *scales_t);
    q.zeros = F32(file, *zeros_t);
    DequantizeGrid(d.rows, d.cols, 1, &q);
    *weights = std::move(q.dequantized);
    return Status::Ok();
  }
  const int64_t blocks = (d.rows * d.cols + d.group_size - 1) / d.group_size;
  const TensorEntry* book_t = file.Find(d.layer + ".codebook");
  if (book_t == nullptr || book_t->dtype != DType::kF32) {
    return LayerError(d.layer, "missing F32 codebook");
  }
  q.codebook = F32(file, *book_t);
  if (d.double_quant) {
    const TensorEntry *codes_t = nullptr, *scales_t = nullptr, *offset_t = nullptr;
    SOLVERD_RETURN_IF_ERROR(
        Expect(file, d.layer, d.layer + ".absmax_codes", DType::kU8, blocks, &codes_t));
    SOLVERD_RETURN_IF_ERROR(Expect(file, d.layer, d.layer + ".absmax_scales", DType::kF32,
                                   (blocks + kDoubleQuantBlock - 1) / kDoubleQuantBlock,
                                   &scales_t));
    SOLVERD_RETURN_IF_ERROR(
        Expect(file, d.layer, d.layer + ".absmax_offset", DType::kF32, 1, &offset_t));
    const std::string_view a_codes = file.Bytes(*codes_t);
    const std::vector<float> scales = F32(file, *scales_t), offset = F32(file, *offset_t);
    for (int64_t b = 0; b < blocks; ++b) {
      q.absmax.push_back(DoubleQuantAbsmax(static_cast<uint8_t>(a_codes[b]),
                                           scales[b / kDoubleQuantBlock], offset[0]));
    }
  } else {
    SOLVERD_RETURN_IF_ERROR(Expect(file, d.layer, d.layer + ".absmax", DType::kF32, blocks, &t));
    q.absmax = F32(file, *t);
  }
  for (const uint8_t code : q.codes) {
    if (code >= q.codebook.size()) return LayerError(d.layer, "code beyond the codebook");
  }
  DequantizeBlockwise(&q);
  *weights = std::move(q.dequantized);
  return Status::Ok();
}

std::string DescriptionJson(const LayerDescription& d) {
  return std::string("{\"source\":") + JsonQuote(d.source) + ",\"source_dtype\":\"" +
         DTypeName(d.source_dtype) + "\",\"shape\":[" + std::to_string(d.rows) + "," +
         std::to_string(d.cols) + "],\"method\":\"" + MethodName(d.method) +
         "\",\"bits\":" + std::to_string(d.bits) + ",\"group_size\":" +
         std::to_string(d.group_size) + ",\"symmetric\":" + (d.symmetric ? "true" : "false") +
         ",\"double_quant\":" + (d.double_quant ? "true" : "false") +
         ",\"packing\":\"row-lsb-first\"}";
}

Status ParseDescription(const std::string& layer, const std::string& json, LayerDescription* d) {
  JsonValue v;
  if (!ParseJson(json, &v).ok() || v.kind != JsonValue::Kind::kObject) {
    return LayerError(layer, "metadata is not a JSON object");
  }
  d->layer = layer;
  for (const auto& [key, value] : v.object) {
    if (key == "source" && value.kind == JsonValue::Kind::kString) d->source = value.string;
    if (key == "source_dtype") (void)DTypeFromName(value.string, &d->source_dtype);
    if (key == "method" && !MethodFromName(value.string, &d->method)) {
      return LayerError(layer, "unknown method " + JsonQuote(value.string));
    }
    if (key == "bits") d->bits = static_cast<int>(value.integer);
    if (key == "group_size") d->group_size = value.integer;
    if (key == "symmetric") d->symmetric = value.boolean;
    if (key == "double_quant") d->double_quant = value.boolean;
    if (key == "shape" && value.array.size() == 2) {
      d->rows = value.array[0].integer;
      d->cols = value.array[1].integer;
    }
  }
  if (d->source.empty() || d->rows < 1 || d->cols < 1 || d->bits < 1 || d->bits > 8) {
    return LayerError(layer, "metadata lacks source, shape or bits");
  }
  return Status::Ok();
}

}  // namespace solverd::quant::internal

namespace solverd::quant {

// (Declared in model.h: the inverse of solverd's layout.)
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
      writer.Add(t.name, t.dtype, t.shape, file.Bytes(t));
    }
  }
  *out = writer.Finish();
  return Status::Ok();
}

}  // namespace solverd::quant
