// AutoGPTQ's layout (model_writer.h).
#include <cstring>
#include <numeric>

#include "quant/formats/gptq_checkpoint.h"
#include "quant/formats/json.h"
#include "quant/quant_backend.h"
#include "quant/formats/model_writer.h"

namespace solverd::quant::internal {
namespace {

// Both dimensions must be multiples of this for whole words of codes.
int64_t DimensionMultiple(int bits) { return 32 / std::gcd(bits, 32); }

// AutoGPTQ packs a run of codes as one little-endian stream of 32-bit words,
// code i at bits [bits * i, bits * (i + 1)); 3-bit codes straddle words.
// The stream's words are `stride` apart.
void PutCode(uint32_t code, int64_t i, int bits, int64_t stride, uint32_t* words) {
  const int64_t bit = i * bits;
  const int shift = static_cast<int>(bit % 32);
  words[(bit / 32) * stride] |= code << shift;
  if (shift + bits > 32) words[(bit / 32 + 1) * stride] |= code >> (32 - shift);
}

std::string WordsToBytes(const std::vector<uint32_t>& words) {
  std::string bytes(words.size() * 4, '\0');
  for (size_t i = 0; i < words.size(); ++i) {
    for (int b = 0; b < 4; ++b) bytes[i * 4 + b] = static_cast<char>((words[i] >> (8 * b)) & 0xff);
  }
  return bytes;
}

class GptqWriter final : public ModelWriter {
 public:
  GptqWriter(const ModelOptions& options, const ModelPlan& plan)
      : options_(options.layer),
        max_shard_bytes_(options.max_shard_bytes),
        config_json_(plan.config_json),
        passthrough_(plan.passthrough) {}

  Status SpillTo(const std::string& dir) override { return writer_.SpillTo(dir); }
  void AddMetadata(const std::string& key, const std::string& value) override {
    if (key != "quantize_config") writer_.AddMetadata(key, value);
  }
  void AddCopied(const TensorEntry& t, std::string_view bytes) override {
    writer_.Add(t.name, t.dtype, t.shape, bytes);
  }
  Status AddLayer(const LayerDescription& d, const QuantizedLayer& q, int64_t* bytes) override;
  Status Finish(ByteSink* out) override {
    if (config_json_.empty()) {
      writer_.AddMetadata("quantize_config", GptqQuantizeConfig(options_));
      return writer_.Finish(out);
    }
    return PackGptqCheckpoint(writer_.tensors(), writer_.data(), config_json_, options_,
                              passthrough_, max_shard_bytes_, out, &members_);
  }
  std::vector<std::string> members() const override { return members_; }

 private:
  const Options options_;
  const int64_t max_shard_bytes_;
  const std::string_view config_json_;  // empty: one safetensors file
  const std::vector<std::pair<std::string, std::string_view>> passthrough_;
  SafetensorsWriter writer_;
  std::vector<std::string> members_;
};

Status GptqWriter::AddLayer(const LayerDescription& d, const QuantizedLayer& q, int64_t* bytes) {
  const int64_t n = d.rows, k = d.cols;
  const int64_t groups = GroupCount(k, q.group_size);
  const int64_t weight_words = k * q.bits / 32, zero_words = n * q.bits / 32;
  std::vector<uint32_t> qweight(static_cast<size_t>(weight_words * n), 0);
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t i = 0; i < k; ++i) PutCode(q.codes[j * k + i], i, q.bits, n, &qweight[j]);
  }
  std::vector<uint32_t> qzeros(static_cast<size_t>(groups * zero_words), 0);
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t j = 0; j < n; ++j) {
      const float zero = q.zeros[j * groups + g];
      if (zero < 1) {
        return InvalidArgument("export: layer " + JsonQuote(d.source) + " row " +
                               std::to_string(j) + " has zero point 0, which the gptq layout "
                               "cannot store (it stores zero - 1); use symmetric");
      }
      PutCode(static_cast<uint32_t>(zero - 1), j, q.bits, 1, &qzeros[g * zero_words]);
    }
  }
  std::vector<float> scales(static_cast<size_t>(groups * n));
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t j = 0; j < n; ++j) scales[g * n + j] = q.scales[j * groups + g];
  }
  std::vector<uint32_t> g_idx(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) g_idx[i] = static_cast<uint32_t>(i / q.group_size);
  std::string qweight_bytes = WordsToBytes(qweight), qzeros_bytes = WordsToBytes(qzeros);
  std::string scales_bytes = HalvesToBytes(scales), g_idx_bytes = WordsToBytes(g_idx);
  *bytes = static_cast<int64_t>(qweight_bytes.size() + qzeros_bytes.size() +
                                scales_bytes.size() + g_idx_bytes.size());
  writer_.Add(d.layer + ".qweight", DType::kI32, {weight_words, n}, std::move(qweight_bytes));
  writer_.Add(d.layer + ".qzeros", DType::kI32, {groups, zero_words}, std::move(qzeros_bytes));
  writer_.Add(d.layer + ".scales", DType::kF16, {groups, n}, std::move(scales_bytes));
  writer_.Add(d.layer + ".g_idx", DType::kI32, {k}, std::move(g_idx_bytes));
  return Status::Ok();
}

}  // namespace

std::unique_ptr<ModelWriter> NewGptqWriter(const ModelOptions& options, const ModelPlan& plan) {
  return std::make_unique<GptqWriter>(options, plan);
}

Status CheckGptqLayer(const TensorEntry& t, const ModelOptions& options) {
  if (AllocatesBits(options)) {
    return InvalidArgument("export: the gptq layout has one bit width for every layer; bit "
                           "allocation needs the solverd or gguf layout");
  }
  const int bits = options.layer.bits;
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8) {
    return InvalidArgument("export: the gptq layout packs 2, 3, 4 or 8 bits, not " +
                           std::to_string(bits));
  }
  const int64_t multiple = DimensionMultiple(bits);
  if (t.shape[0] % multiple != 0 || t.shape[1] % multiple != 0) {
    return InvalidArgument("export: tensor " + JsonQuote(t.name) + ": the gptq layout packs " +
                           std::to_string(bits) + "-bit codes into whole int32 words, so both "
                           "dimensions must be multiples of " + std::to_string(multiple));
  }
  return Status::Ok();
}

}  // namespace solverd::quant::internal
