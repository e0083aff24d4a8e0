// GGUF v3 files (model_writer.h): header, metadata, tensor infos, then the
// tensor data, each tensor at a multiple of the alignment.
#include <cstring>

#include "quant/half.h"
#include "quant/formats/json.h"
#include "quant/formats/model_writer.h"

namespace solverd::quant::internal {
namespace {

constexpr uint32_t kGgufVersion = 3;
constexpr uint64_t kAlignment = 32;
constexpr int64_t kBlock = 32;  // weights per Q4_0 / Q8_0 block

// A Q4_0 / Q8_0 block: an fp16 scale, then the codes.
int64_t BlockBytes(int bits) { return 2 + kBlock * bits / 8; }

// ggml's type numbers.
enum GgmlType : uint32_t {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ8_0 = 8, kI8 = 24, kI16 = 25, kI32 = 26, kI64 = 27,
  kF64 = 28, kBF16 = 30
};
constexpr uint32_t kGgufString = 8;  // metadata value type
constexpr uint32_t kGgufUint32 = 4;

bool GgmlTypeOf(DType dtype, uint32_t* type) {
  switch (dtype) {
    case DType::kF32: *type = kF32; return true;
    case DType::kF16: *type = kF16; return true;
    case DType::kBF16: *type = kBF16; return true;
    case DType::kF64: *type = kF64; return true;
    case DType::kI8: *type = kI8; return true;
    case DType::kI16: *type = kI16; return true;
    case DType::kI32: *type = kI32; return true;
    case DType::kI64: *type = kI64; return true;
    default: return false;
  }
}

template <typename T>
void Put(T value, std::string* out) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));  // little-endian hosts only, as ggml
  out->append(bytes, sizeof(T));
}

void PutString(std::string_view s, std::string* out) {
  Put<uint64_t>(s.size(), out);
  out->append(s);
}

void PutHalf(float value, std::string* out) { Put<uint16_t>(FloatToHalf(value), out); }

class GgufWriter final : public ModelWriter {
 public:
  void AddMetadata(const std::string& key, const std::string& value) override {
    metadata_.emplace_back("solverd.source." + key, value);
  }
  void AddCopied(const TensorEntry& t, std::string_view bytes) override {
    uint32_t type = kF32;
    GgmlTypeOf(t.dtype, &type);  // checked at plan time
    Add(t.name, type, t.shape, std::string(bytes));
  }
  Status AddLayer(const LayerDescription& d, const QuantizedLayer& q, int64_t* bytes) override;
  std::string Finish() override;

 private:
  struct Tensor {
    std::string name;
    uint32_t type;
    std::vector<int64_t> shape;  // safetensors order (outermost first)
    std::string bytes;
  };
  void Add(std::string name, uint32_t type, std::vector<int64_t> shape, std::string bytes) {
    tensors_.push_back({std::move(name), type, std::move(shape), std::move(bytes)});
  }

  std::vector<std::pair<std::string, std::string>> metadata_;
  std::vector<Tensor> tensors_;
};

Status GgufWriter::AddLayer(const LayerDescription& d, const QuantizedLayer& q, int64_t* bytes) {
  const int64_t blocks = d.rows * d.cols / kBlock;
  std::string data;
  data.reserve(static_cast<size_t>(blocks * BlockBytes(q.bits)));
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* codes = &q.codes[b * kBlock];
    PutHalf(q.scales[b], &data);  // one group per block, row-major
    if (q.bits == 4) {
      for (int j = 0; j < kBlock / 2; ++j) {
        data.push_back(static_cast<char>(codes[j] | (codes[j + kBlock / 2] << 4)));
      }
    } else {
      for (int j = 0; j < kBlock; ++j) data.push_back(static_cast<char>(codes[j] - 128));
    }
  }
  *bytes = static_cast<int64_t>(data.size());
  Add(d.source, q.bits == 4 ? kQ4_0 : kQ8_0, {d.rows, d.cols}, std::move(data));
  return Status::Ok();
}

std::string GgufWriter::Finish() {
  std::string out("GGUF");
  Put<uint32_t>(kGgufVersion, &out);
  Put<uint64_t>(tensors_.size(), &out);
  Put<uint64_t>(metadata_.size() + 2, &out);
  PutString("general.alignment", &out);
  Put<uint32_t>(kGgufUint32, &out);
  Put<uint32_t>(kAlignment, &out);
  PutString("general.quantized_by", &out);
  Put<uint32_t>(kGgufString, &out);
  PutString("solverd", &out);
  for (const auto& [key, value] : metadata_) {
    PutString(key, &out);
    Put<uint32_t>(kGgufString, &out);
    PutString(value, &out);
  }
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    PutString(t.name, &out);
    const size_t dims = t.shape.empty() ? 1 : t.shape.size();
    Put<uint32_t>(static_cast<uint32_t>(dims), &out);
    if (t.shape.empty()) Put<uint64_t>(1, &out);
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) Put<uint64_t>(*it, &out);
    Put<uint32_t>(t.type, &out);
    Put<uint64_t>(offset, &out);
    offset += (t.bytes.size() + kAlignment - 1) / kAlignment * kAlignment;
  }
  for (const Tensor& t : tensors_) {
    out.resize((out.size() + kAlignment - 1) / kAlignment * kAlignment, '\0');
    out.append(t.bytes);
  }
  return out;
}

}  // namespace

std::unique_ptr<ModelWriter> NewGgufWriter() { return std::make_unique<GgufWriter>(); }

int64_t GgufLayerBytes(int64_t rows, int64_t cols, int bits) {
  return rows * cols / kBlock * BlockBytes(bits);
}

Status CheckGgufLayer(const TensorEntry& t, const ModelOptions& options) {
  const Options& o = options.layer;
  const bool allocating = AllocatesBits(options);
  const std::vector<int> widths = allocating ? options.allocation_bits : std::vector<int>{o.bits};
  for (const int bits : widths) {
    if (bits != 4 && bits != 8) {
      return InvalidArgument("export: the gguf layout holds 4-bit (Q4_0) and 8-bit (Q8_0) "
                             "layers, not " + std::to_string(bits) + " bits" +
                             (allocating ? " (allocation_bits)" : ""));
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
