// The GPTQ and GGUF exports, read back by readers written here from the
// layouts' published definitions (AutoGPTQ's packing, GGUF v3 and ggml's
// Q4_0 / Q8_0 blocks), against the layer QuantizeLayer computes.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>

#include "quant/formats/json.h"
#include "quant/half.h"
#include "quant/model.h"
#include "quant_test_util.h"

namespace solverd::quant {
namespace {

// fc.weight [32, 64], a bias, and an int64 step counter.
std::string MakeModel() {
  SafetensorsWriter w;
  w.AddMetadata("source", "test");
  w.Add("fc.weight", DType::kF32, {32, 64}, FloatsToBytes(Random(32 * 64, 1)));
  w.Add("fc.bias", DType::kF32, {32}, FloatsToBytes(Random(32, 2)));
  w.Add("step", DType::kI64, {1}, std::string(8, '\x02'));
  return w.Finish();
}

std::vector<float> Expected(const std::string& model, const Options& o) {
  SafetensorsFile f;
  EXPECT_TRUE(ParseSafetensors(model, &f).ok());
  Layer layer;
  layer.rows = 32;
  layer.cols = 64;
  EXPECT_TRUE(ReadFloats(f, *f.Find("fc.weight"), &layer.weights).ok());
  QuantizedLayer q;
  EXPECT_TRUE(QuantizeLayer(Device::Cpu(), nullptr, layer, o, nullptr, &q).ok());
  return q.dequantized;
}

std::string Export(const std::string& model, const ModelOptions& options) {
  ModelPlan plan;
  Status s = PlanModel(model, "", options, &plan);
  EXPECT_TRUE(s.ok()) << s.message();
  ModelResult result;
  s = QuantizeModel(Device::Cpu(), nullptr, plan, options, nullptr, nullptr, &result);
  EXPECT_TRUE(s.ok()) << s.message();
  return result.file;
}

template <typename T>
T At(const std::string_view bytes, size_t index) {
  T v;
  std::memcpy(&v, bytes.data() + index * sizeof(T), sizeof(T));
  return v;
}

// Code `index` of a run of I32 words `stride` apart, read bit by bit from
// AutoGPTQ's definition: the run is one little-endian bit stream and code i
// occupies bits [bits * i, bits * (i + 1)).
int StreamCode(std::string_view words, size_t first, size_t stride, int64_t index, int bits) {
  int code = 0;
  for (int b = 0; b < bits; ++b) {
    const int64_t bit = index * bits + b;
    const uint32_t word = At<uint32_t>(words, first + static_cast<size_t>(bit / 32) * stride);
    code |= static_cast<int>((word >> (bit % 32)) & 1u) << b;
  }
  return code;
}

TEST(GptqExport, UnpacksToTheQuantizedLayer) {
  const std::string model = MakeModel();
  for (const int bits : {2, 3, 4, 8}) {
    for (const bool symmetric : {false, true}) {
      ModelOptions options;
      options.format = ExportFormat::kGptq;
      options.layer.bits = bits;
      options.layer.group_size = 16;
      options.layer.symmetric = symmetric;
      SafetensorsFile f;
      const std::string file = Export(model, options);
      ASSERT_TRUE(ParseSafetensors(file, &f).ok());
      const TensorEntry *qweight = f.Find("fc.qweight"), *qzeros = f.Find("fc.qzeros"),
                        *scales = f.Find("fc.scales"), *g_idx = f.Find("fc.g_idx");
      ASSERT_TRUE(qweight && qzeros && scales && g_idx);
      EXPECT_EQ(qweight->shape, (std::vector<int64_t>{64 * bits / 32, 32}));
      EXPECT_EQ(qzeros->shape, (std::vector<int64_t>{4, 32 * bits / 32}));
      EXPECT_EQ(scales->dtype, DType::kF16);
      const std::vector<float> expected = Expected(model, options.layer);
      for (int64_t j = 0; j < 32; ++j) {    // out feature
        for (int64_t i = 0; i < 64; ++i) {  // in feature
          const int g = At<int32_t>(f.Bytes(*g_idx), i);
          const int code = StreamCode(f.Bytes(*qweight), j, 32, i, bits);
          const size_t zero_words = static_cast<size_t>(qzeros->shape[1]);
          // v1 stores zero - 1
          const int zero = StreamCode(f.Bytes(*qzeros), g * zero_words, 1, j, bits) + 1;
          const float scale = HalfToFloat(At<uint16_t>(f.Bytes(*scales), g * 32 + j));
          ASSERT_EQ(scale * static_cast<float>(code - zero), expected[j * 64 + i])
              << bits << " bits, " << j << "," << i;
        }
      }
      if (bits == 3) {  // AutoGPTQ's 3-bit table: code 10 is word 0's bits 30-31 and word 1's 0
        const uint32_t w0 = At<uint32_t>(f.Bytes(*qweight), 0);
        const uint32_t w1 = At<uint32_t>(f.Bytes(*qweight), 32);
        EXPECT_EQ(static_cast<int>((w0 >> 30) | ((w1 & 1u) << 2)),
                  StreamCode(f.Bytes(*qweight), 0, 32, 10, 3));
      }
      EXPECT_NE(f.Find("fc.bias"), nullptr);
      bool has_config = false;
      for (const auto& [key, value] : f.metadata) {
        JsonValue config;
        if (key != "quantize_config" || !ParseJson(value, &config).ok()) continue;
        has_config = JsonFind(config, "bits")->integer == bits &&
                     JsonFind(config, "quant_method")->string == "gptq";
      }
      EXPECT_TRUE(has_config);
    }
  }
}

// A GGUF v3 reader from the specification.
struct GgufTensor {
  std::vector<uint64_t> ne;
  uint32_t type = 0;
  uint64_t offset = 0;
};
struct Gguf {
  std::map<std::string, std::string> strings;
  std::map<std::string, GgufTensor> tensors;
  std::string_view data;
};
Gguf ReadGguf(std::string_view b) {
  Gguf g;
  size_t at = 0;
  auto u32 = [&] { uint32_t v; std::memcpy(&v, b.data() + at, 4); at += 4; return v; };
  auto u64 = [&] { uint64_t v; std::memcpy(&v, b.data() + at, 8); at += 8; return v; };
  auto str = [&] { const uint64_t n = u64(); std::string s(b.substr(at, n)); at += n; return s; };
  EXPECT_EQ(b.substr(0, 4), "GGUF");
  at = 4;
  EXPECT_EQ(u32(), 3u);
  const uint64_t tensors = u64(), kv = u64();
  uint32_t alignment = 32;
  for (uint64_t i = 0; i < kv; ++i) {
    const std::string key = str();
    const uint32_t type = u32();
    if (type == 8) g.strings[key] = str();
    else if (type == 4) alignment = key == "general.alignment" ? u32() : (u32(), alignment);
    else ADD_FAILURE() << "value type " << type;
  }
  for (uint64_t i = 0; i < tensors; ++i) {
    const std::string name = str();
    GgufTensor& t = g.tensors[name];
    t.ne.resize(u32());
    for (uint64_t& n : t.ne) n = u64();
    t.type = u32();
    t.offset = u64();
    EXPECT_EQ(t.offset % alignment, 0u);
  }
  at = (at + alignment - 1) / alignment * alignment;
  g.data = b.substr(at);
  return g;
}

TEST(GgufExport, Q4_0AndQ8_0BlocksDequantizeToTheQuantizedLayer) {
  const std::string model = MakeModel();
  for (const int bits : {4, 8}) {
    ModelOptions options;
    options.format = ExportFormat::kGguf;
    options.layer.bits = bits;
    options.layer.group_size = 32;
    options.layer.symmetric = true;
    const std::string file = Export(model, options);
    const Gguf g = ReadGguf(file);
    EXPECT_EQ(g.strings.at("solverd.source.source"), "test");
    const GgufTensor& fc = g.tensors.at("fc.weight");
    EXPECT_EQ(fc.ne, (std::vector<uint64_t>{64, 32}));  // innermost first
    EXPECT_EQ(fc.type, bits == 4 ? 2u : 8u);
    const std::vector<float> expected = Expected(model, options.layer);
    const size_t block_bytes = bits == 4 ? 18 : 34;
    for (size_t b = 0; b < 32 * 64 / 32; ++b) {
      const std::string_view block = g.data.substr(fc.offset + b * block_bytes, block_bytes);
      const float d = HalfToFloat(At<uint16_t>(block, 0));
      for (int j = 0; j < 32; ++j) {
        float w;
        if (bits == 4) {
          const auto byte = static_cast<uint8_t>(block[2 + j % 16]);
          w = d * static_cast<float>((j < 16 ? byte & 0xf : byte >> 4) - 8);
        } else {
          w = d * static_cast<float>(static_cast<int8_t>(block[2 + j]));
        }
        ASSERT_EQ(w, expected[b * 32 + j]) << bits << " bits, block " << b << ", " << j;
      }
    }
    const GgufTensor& step = g.tensors.at("step");
    EXPECT_EQ(step.type, 27u);  // I64
    EXPECT_EQ(g.data.substr(step.offset, 8), std::string(8, '\x02'));
    EXPECT_EQ(g.tensors.at("fc.bias").type, 0u);
  }
}

TEST(Export, LayoutsRefuseWhatTheyCannotHold) {
  const std::string model = MakeModel();
  ModelPlan plan;
  ModelOptions o;
  o.format = ExportFormat::kGptq;
  o.layer.bits = 5;
  EXPECT_EQ(PlanModel(model, "", o, &plan).message(),
            "export: the gptq layout packs 2, 3, 4 or 8 bits, not 5");
  o.layer.bits = 4;
  o.layer.method = Method::kHqq;
  EXPECT_EQ(PlanModel(model, "", o, &plan).message(),
            "export: the gptq layout holds integer grids (rtn, gptq, dmmv), not hqq");
  o.layer.method = Method::kRtn;
  o.target_bits = 5;
  EXPECT_EQ(PlanModel(model, "", o, &plan).message().rfind("export: the gptq layout has one", 0),
            0u);
  o = ModelOptions();
  o.format = ExportFormat::kGptq;
  o.layer.bits = 3;
  SafetensorsWriter narrow;
  narrow.Add("fc.weight", DType::kF32, {16, 64}, FloatsToBytes(Random(16 * 64, 1)));
  EXPECT_EQ(PlanModel(narrow.Finish(), "", o, &plan).message(),
            "export: tensor \"fc.weight\": the gptq layout packs 3-bit codes into whole int32 "
            "words, so both dimensions must be multiples of 32");
  o = ModelOptions();
  o.format = ExportFormat::kGguf;
  EXPECT_EQ(PlanModel(model, "", o, &plan).message(),
            "export: the gguf layout (Q4_0, Q8_0) needs symmetric grids with group_size 32");
  SafetensorsWriter w;
  w.Add("fc.weight", DType::kF32, {16, 64}, FloatsToBytes(Random(16 * 64, 1)));
  w.Add("mask", DType::kU8, {4}, "abcd");
  o.layer.symmetric = true;
  o.layer.group_size = 32;
  EXPECT_EQ(PlanModel(w.Finish(), "", o, &plan).message(),
            "export: tensor \"mask\" has dtype U8, which gguf cannot hold");
}

}  // namespace
}  // namespace solverd::quant
