#include "quant/formats/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "quant/half.h"
#include "quant/formats/json.h"

namespace solverd::quant {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this reader copies it as is");

struct DTypeInfo {
  DType dtype;
  const char* name;
  int size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::kBool, "BOOL", 1},     {DType::kU8, "U8", 1},   {DType::kI8, "I8", 1},
    {DType::kF8E5M2, "F8_E5M2", 1}, {DType::kF8E4M3, "F8_E4M3", 1},
    {DType::kI16, "I16", 2},       {DType::kU16, "U16", 2}, {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2},     {DType::kI32, "I32", 4}, {DType::kU32, "U32", 4},
    {DType::kF32, "F32", 4},       {DType::kF64, "F64", 8}, {DType::kI64, "I64", 8},
    {DType::kU64, "U64", 8},
};

const DTypeInfo& Info(DType dtype) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.dtype == dtype) return info;
  }
  return kDTypes[0];
}

Status TensorError(const std::string& name, const std::string& what) {
  return InvalidArgument("tensor " + JsonQuote(name) + ": " + what);
}

Status ParseMetadata(const JsonValue& value, SafetensorsFile* out) {
  if (value.kind != JsonValue::Kind::kObject) {
    return InvalidArgument("__metadata__: must be an object of strings");
  }
  for (const auto& [key, v] : value.object) {
    if (v.kind != JsonValue::Kind::kString) {
      return InvalidArgument("__metadata__." + key + ": must be a string");
    }
    out->metadata.emplace_back(key, v.string);
  }
  return Status::Ok();
}

// Fills `out` from one header member; the byte range is checked later.
Status ParseEntry(const std::string& name, const JsonValue& value, TensorEntry* out) {
  out->name = name;
  if (value.kind != JsonValue::Kind::kObject) return TensorError(name, "must be an object");
  bool have_dtype = false, have_shape = false, have_offsets = false;
  for (const auto& [key, v] : value.object) {
    if (key == "dtype") {
      if (v.kind != JsonValue::Kind::kString || !DTypeFromName(v.string, &out->dtype)) {
        return TensorError(name, "unknown dtype");
      }
      have_dtype = true;
    } else if (key == "shape") {
      if (v.kind != JsonValue::Kind::kArray) return TensorError(name, "shape must be an array");
      for (const JsonValue& d : v.array) {
        if (d.kind != JsonValue::Kind::kInteger || d.integer < 0) {
          return TensorError(name, "shape entries must be non-negative integers");
        }
        out->shape.push_back(d.integer);
      }
      have_shape = true;
    } else if (key == "data_offsets") {
      if (v.kind != JsonValue::Kind::kArray || v.array.size() != 2 ||
          v.array[0].kind != JsonValue::Kind::kInteger ||
          v.array[1].kind != JsonValue::Kind::kInteger) {
        return TensorError(name, "data_offsets must be [begin, end]");
      }
      out->begin = v.array[0].integer;
      out->end = v.array[1].integer;
      have_offsets = true;
    } else {
      return TensorError(name, "unknown key " + JsonQuote(key));
    }
  }
  if (!have_dtype || !have_shape || !have_offsets) {
    return TensorError(name, "needs dtype, shape and data_offsets");
  }
  if (out->begin < 0 || out->end < out->begin) {
    return TensorError(name, "data_offsets must satisfy 0 <= begin <= end");
  }
  int64_t elements = 1;
  for (const int64_t d : out->shape) {
    if (d != 0 && elements > (int64_t{1} << 62) / d) return TensorError(name, "shape too large");
    elements *= d;
  }
  const int64_t size = DTypeSize(out->dtype);
  if (elements > (int64_t{1} << 62) / size || elements * size != out->end - out->begin) {
    return TensorError(name, std::string(DTypeName(out->dtype)) + " shape needs " +
                                 std::to_string(elements) + " x " + std::to_string(size) +
                                 " bytes, data_offsets give " +
                                 std::to_string(out->end - out->begin));
  }
  return Status::Ok();
}

// The tensors, sorted by offset, must cover [0, data_bytes) exactly.
Status CheckTiling(std::vector<TensorEntry>* tensors, int64_t data_bytes) {
  std::stable_sort(tensors->begin(), tensors->end(),
                   [](const TensorEntry& a, const TensorEntry& b) {
                     return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
                   });
  int64_t covered = 0;
  for (const TensorEntry& t : *tensors) {
    if (t.end > data_bytes) {
      return TensorError(t.name, "data_offsets end " + std::to_string(t.end) +
                                     " is past the file's " + std::to_string(data_bytes) +
                                     " data bytes");
    }
    if (t.begin < covered) return TensorError(t.name, "overlaps the tensor before it");
    if (t.begin > covered) return TensorError(t.name, "leaves a hole before it");
    covered = t.end;
  }
  if (covered != data_bytes) {
    return InvalidArgument("safetensors: " + std::to_string(data_bytes - covered) +
                           " bytes after the last tensor");
  }
  return Status::Ok();
}

}  // namespace

int DTypeSize(DType dtype) { return Info(dtype).size; }
const char* DTypeName(DType dtype) { return Info(dtype).name; }

bool DTypeFromName(std::string_view name, DType* out) {
  for (const DTypeInfo& info : kDTypes) {
    if (name == info.name) {
      *out = info.dtype;
      return true;
    }
  }
  return false;
}

bool IsFloat(DType dtype) {
  return dtype == DType::kF16 || dtype == DType::kBF16 || dtype == DType::kF32 ||
         dtype == DType::kF64;
}

int64_t TensorEntry::elements() const {
  int64_t n = 1;
  for (const int64_t d : shape) n *= d;
  return n;
}

const TensorEntry* SafetensorsFile::Find(std::string_view name) const {
  for (const TensorEntry& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

Status ParseSafetensors(std::string_view bytes, SafetensorsFile* out) {
  *out = SafetensorsFile();
  if (bytes.size() < 8) {
    return InvalidArgument("safetensors: shorter than its 8-byte header length");
  }
  uint64_t header_bytes;
  memcpy(&header_bytes, bytes.data(), 8);
  const uint64_t available = bytes.size() - 8;
  if (header_bytes > static_cast<uint64_t>(kMaxHeaderBytes) || header_bytes > available) {
    return InvalidArgument("safetensors: header length " + std::to_string(header_bytes) +
                           " exceeds the file (" + std::to_string(available) +
                           " bytes after it) or the 100 MiB bound");
  }
  JsonValue header;
  if (Status s = ParseJson(bytes.substr(8, header_bytes), &header); !s.ok()) {
    return InvalidArgument("safetensors header: " + s.message());
  }
  if (header.kind != JsonValue::Kind::kObject) {
    return InvalidArgument("safetensors header: must be a JSON object");
  }
  std::vector<std::string_view> names;
  for (const auto& [name, value] : header.object) {
    names.push_back(name);
    if (name == "__metadata__") {
      SOLVERD_RETURN_IF_ERROR(ParseMetadata(value, out));
      continue;
    }
    out->tensors.emplace_back();
    SOLVERD_RETURN_IF_ERROR(ParseEntry(name, value, &out->tensors.back()));
  }
  std::sort(names.begin(), names.end());
  for (size_t i = 1; i < names.size(); ++i) {
    if (names[i] == names[i - 1]) {
      return TensorError(std::string(names[i]), "appears twice in the header");
    }
  }
  out->shards = {bytes.substr(8 + header_bytes)};
  return CheckTiling(&out->tensors, static_cast<int64_t>(out->shards[0].size()));
}

Status ReadFloats(const SafetensorsFile& file, const TensorEntry& tensor, std::vector<float>* out) {
  if (!IsFloat(tensor.dtype)) {
    return TensorError(tensor.name, std::string("dtype ") + DTypeName(tensor.dtype) +
                                        " is not a float type (F16, BF16, F32, F64)");
  }
  FloatsFromBytes(tensor.dtype, file.Bytes(tensor), tensor.elements(), out);
  return Status::Ok();
}

void FloatsFromBytes(DType dtype, std::string_view bytes, int64_t n, std::vector<float>* out) {
  out->resize(static_cast<size_t>(n));
  if (n == 0) return;
  // One loop per dtype: the switch stays out of the per-element loop.
  const auto convert = [&](auto element, auto to_float) {
    for (int64_t i = 0; i < n; ++i) {
      memcpy(&element, bytes.data() + sizeof(element) * i, sizeof(element));
      (*out)[i] = to_float(element);
    }
  };
  switch (dtype) {
    case DType::kF32: memcpy(out->data(), bytes.data(), 4 * static_cast<size_t>(n)); break;
    case DType::kF64: convert(double{}, [](double d) { return static_cast<float>(d); }); break;
    case DType::kF16: convert(uint16_t{}, HalfToFloat); break;
    default: convert(uint16_t{}, BfloatToFloat);
  }
}

std::string SafetensorsHeader(const std::vector<TensorLayout>& tensors,
                              const std::vector<std::pair<std::string, std::string>>& metadata) {
  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    for (size_t i = 0; i < metadata.size(); ++i) {
      if (i > 0) header += ",";
      header += JsonQuote(metadata[i].first) + ":" + JsonQuote(metadata[i].second);
    }
    header += "}";
  }
  int64_t offset = 0;
  for (const TensorLayout& t : tensors) {
    if (header.size() > 1) header += ",";
    header += JsonQuote(t.name) + ":{\"dtype\":\"" + DTypeName(t.dtype) + "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) {
      header += (i > 0 ? "," : "") + std::to_string(t.shape[i]);
    }
    const int64_t end = offset + t.bytes;
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(end) + "]}";
    offset = end;
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  const uint64_t header_bytes = header.size();
  memcpy(out.data(), &header_bytes, 8);
  return out + header;
}

void SafetensorsWriter::Add(std::string name, DType dtype, std::vector<int64_t> shape,
                            std::string_view bytes) {
  tensors_.push_back({std::move(name), dtype, std::move(shape),
                      static_cast<int64_t>(bytes.size())});
  (void)data_.Append(bytes);  // an error is kept for Finish()
}

void SafetensorsWriter::AddMetadata(std::string key, std::string value) {
  metadata_.emplace_back(std::move(key), std::move(value));
}

Status SafetensorsWriter::Finish(internal::ByteSink* out) {
  SOLVERD_RETURN_IF_ERROR(out->Append(SafetensorsHeader(tensors_, metadata_)));
  tensors_.clear();
  metadata_.clear();
  return data_.MoveTo(out);
}

std::string SafetensorsWriter::Finish() {
  std::string out;
  out.reserve(static_cast<size_t>(data_.size()) + 4096);
  internal::StringSink sink(&out);
  Finish(&sink);  // in memory: nothing fails
  return out;
}

std::string FloatsToBytes(const std::vector<float>& values) {
  std::string out(values.size() * 4, '\0');
  memcpy(out.data(), values.data(), out.size());
  return out;
}

std::string HalvesToBytes(const std::vector<float>& values) {
  std::string out(values.size() * 2, '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    const uint16_t h = FloatToHalf(values[i]);
    memcpy(out.data() + 2 * i, &h, 2);
  }
  return out;
}

}  // namespace solverd::quant
