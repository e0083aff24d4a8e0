// llama.cpp's K-quants: the blocks solverd writes, decoded here by a reader
// written from ggml's block layout (not from the writer), give back exactly
// the weights solverd measured; GPTQ on K-quant grids beats round to
// nearest on them; the Q4_K_M mix picks llama.cpp's tensors; CPU and CUDA
// agree. (llama.cpp itself runs such files in tests/python/llamacpp_test.py.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "quant/formats/gguf_blocks.h"
#include "quant/half.h"
#include "quant/model.h"
#include "quant/quant.h"
#include "quant_test_util.h"

namespace solverd::quant {
namespace {

float Half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return HalfToFloat(h);
}

// ggml's dequantization of one block of 256 weights of each K type.
void DecodeQ4KOrQ5K(const uint8_t* block, bool five, float* out) {
  const float d = Half(block), dmin = Half(block + 2);
  const uint8_t* s = block + 4;
  const uint8_t* high = block + 16;
  const uint8_t* low = five ? block + 48 : block + 16;
  for (int g = 0; g < 8; ++g) {
    const int sc = g < 4 ? s[g] & 63 : (s[g + 4] & 0xF) | ((s[g - 4] >> 6) << 4);
    const int m = g < 4 ? s[g + 4] & 63 : (s[g + 4] >> 4) | ((s[g] >> 6) << 4);
    for (int l = 0; l < 32; ++l) {
      const int chunk = g / 2, upper = g % 2;
      int q = (low[32 * chunk + l] >> (4 * upper)) & 0xF;
      if (five && (high[l] >> g) & 1) q += 16;
      out[32 * g + l] = d * static_cast<float>(sc) * static_cast<float>(q) -
                        dmin * static_cast<float>(m);
    }
  }
}

void DecodeQ6K(const uint8_t* block, float* out) {
  const uint8_t* low = block;
  const uint8_t* high = block + 128;
  const int8_t* scales = reinterpret_cast<const int8_t*>(block + 192);
  const float d = Half(block + 208);
  for (int i = 0; i < 256; ++i) {
    const int half = i / 128, j = i % 128, quarter = j / 32, l = j % 32;
    const uint8_t lo = low[64 * half + l + 32 * (quarter % 2)];
    const int q = ((quarter < 2 ? lo & 0xF : lo >> 4) |
                   (((high[32 * half + l] >> (2 * quarter)) & 3) << 4)) - 32;
    out[i] = d * static_cast<float>(scales[i / 16]) * static_cast<float>(q);
  }
}

std::vector<float> Decode(const std::string& bytes, int bits, int64_t weights) {
  std::vector<float> out(static_cast<size_t>(weights));
  const size_t block_bytes = bits == 4 ? 144 : bits == 5 ? 176 : 210;
  EXPECT_EQ(bytes.size(), weights / 256 * block_bytes);
  for (int64_t b = 0; b < weights / 256; ++b) {
    const auto* block = reinterpret_cast<const uint8_t*>(bytes.data() + b * block_bytes);
    if (bits == 6) {
      DecodeQ6K(block, &out[b * 256]);
    } else {
      DecodeQ4KOrQ5K(block, bits == 5, &out[b * 256]);
    }
  }
  return out;
}

Options KOptions(Method method, int bits) {
  Options o;
  o.method = method;
  o.bits = bits;
  o.k_quant = true;
  return o;
}

double RelativeError(const Layer& l, const QuantizedLayer& q) {
  double num = 0, den = 0;
  for (size_t i = 0; i < l.weights.size(); ++i) {
    num += std::pow(l.weights[i] - q.dequantized[i], 2);
    den += std::pow(l.weights[i], 2);
  }
  return std::sqrt(num / den);
}

TEST(KQuant, BlocksDecodeToTheWeightsMeasured) {
  Layer l = MakeLayer(4, 512, 0, false, 3);
  for (int c = 0; c < 256; ++c) l.weights[c] = 0;           // an all-zero super-block
  for (int c = 256; c < 512; ++c) l.weights[c] = 0.25f;     // a constant one
  for (int c = 0; c < 32; ++c) l.weights[512 + c] *= 40;    // one loud group
  // Round to nearest on K-quant grids lands where ggml's reference
  // quantizer does: a few percent of the weights' RMS.
  const double bound[] = {0.12, 0.06, 0.03};
  for (const int bits : {4, 5, 6}) {
    const QuantizedLayer q = Quantize(l, KOptions(Method::kRtn, bits));
    EXPECT_EQ(q.group_size, bits == 6 ? 16 : 32);
    std::string bytes;
    internal::AppendGgufBlocks(q, l.rows, l.cols, /*k_quant=*/true, &bytes);
    EXPECT_EQ(Decode(bytes, bits, l.rows * l.cols), q.dequantized) << bits << " bits";
    for (int c = 0; c < 256; ++c) ASSERT_EQ(q.dequantized[c], 0.0f) << bits << " bits";
    Layer quiet = l;  // the error on the rows without the loud group
    quiet.weights.assign(l.weights.begin() + 1024, l.weights.end());
    QuantizedLayer quiet_q = q;
    quiet_q.dequantized.assign(q.dequantized.begin() + 1024, q.dequantized.end());
    EXPECT_LT(RelativeError(quiet, quiet_q), bound[bits - 4]) << bits << " bits";
  }
}

TEST(KQuant, GptqBeatsRoundToNearestOnTheSameGrids) {
  const Layer l = MakeLayer(32, 512, 1024, /*correlated=*/true, 5);
  for (const int bits : {4, 6}) {
    double rtn = 0, gptq = 0;
    LayerReport report;
    MeasureLayer(l, Quantize(l, KOptions(Method::kRtn, bits)), 1, &report);
    rtn = report.relative_output_error;
    const QuantizedLayer q = Quantize(l, KOptions(Method::kGptq, bits));
    MeasureLayer(l, q, 1, &report);
    gptq = report.relative_output_error;
    EXPECT_LT(gptq, 0.8 * rtn) << bits << " bits";
    std::string bytes;  // and its codes are K-quant blocks like any other
    internal::AppendGgufBlocks(q, l.rows, l.cols, true, &bytes);
    EXPECT_EQ(Decode(bytes, bits, l.rows * l.cols), q.dequantized) << bits << " bits";
  }
}

TEST(KQuant, RefusesWhatTheBlocksCannotHold) {
  Options o = KOptions(Method::kRtn, 3);
  EXPECT_EQ(ValidateOptions(o).message(),
            "bits: K-quants are 4 (Q4_K), 5 (Q5_K) or 6 (Q6_K) bits, not 3");
  o = KOptions(Method::kHqq, 4);
  EXPECT_EQ(ValidateOptions(o).message(), "method: K-quant grids are rounded by rtn or gptq, "
                                          "not hqq");
  QuantizedLayer q;
  const Status s = QuantizeLayer(Device::Cpu(), nullptr, MakeLayer(2, 320, 0, false, 1),
                                 KOptions(Method::kRtn, 4), nullptr, &q);
  EXPECT_EQ(s.message(), "weights: K-quant super-blocks are 256 weights of a row, and the rows "
                         "have 320");
}

// A Llama checkpoint of `blocks` blocks with 256-wide rows.
std::string EightBlockLlama(int blocks) {
  SafetensorsWriter w;
  for (int b = 0; b < blocks; ++b) {
    const std::string p = "model.layers." + std::to_string(b) + ".";
    w.Add(p + "self_attn.v_proj.weight", DType::kF32, {128, 256},
          FloatsToBytes(Random(128 * 256, b)));
    w.Add(p + "mlp.down_proj.weight", DType::kF32, {256, 256},
          FloatsToBytes(Random(256 * 256, 100 + b)));
    w.Add(p + "mlp.up_proj.weight", DType::kF32, {256, 256},
          FloatsToBytes(Random(256 * 256, 200 + b)));
  }
  w.Add("lm_head.weight", DType::kF32, {4, 256}, FloatsToBytes(Random(4 * 256, 9)));
  return w.Finish();
}

TEST(KQuant, Q4KMGivesLlamaCppsTensorsSixBits) {
  const std::string file = EightBlockLlama(8);
  ModelInput input;
  ASSERT_TRUE(ParseSafetensors(file, &input.weights).ok());
  input.config.model_type = "llama";
  input.config.vocab_size = 4;
  input.config.hidden_size = 256;
  input.config.intermediate_size = 256;
  input.config.num_hidden_layers = 8;
  input.config.num_attention_heads = 2;
  input.config.num_key_value_heads = 1;
  input.config.head_dim = 128;
  const std::string tokenizer =
      R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "d": 3}, "merges": []}})";
  input.tokenizer_json = tokenizer;
  ModelOptions options;
  options.format = ExportFormat::kGguf;
  options.gguf_type = GgufType::kQ4_K_M;
  options.layer.k_quant = true;
  options.include = {"*proj*", "lm_head.weight"};
  ModelPlan plan;
  Status s = PlanModel(input, "", options, &plan);
  ASSERT_TRUE(s.ok()) << s.message();
  // Blocks 0 (first eighth), 7 (last eighth), 3 and 6 (every third from 1).
  std::vector<int> v_proj, down_proj, up_proj;
  for (size_t i = 0; i < plan.selected.size(); ++i) {
    const std::string& name = plan.selected[i].name;
    if (name.find("v_proj") != std::string::npos) v_proj.push_back(plan.bits[i]);
    if (name.find("down_proj") != std::string::npos) down_proj.push_back(plan.bits[i]);
    if (name.find("up_proj") != std::string::npos) up_proj.push_back(plan.bits[i]);
    if (name == "lm_head.weight") EXPECT_EQ(plan.bits[i], 6);  // llama.cpp's output: Q6_K
  }
  const std::vector<int> mixed = {6, 4, 4, 6, 4, 4, 6, 6};
  EXPECT_EQ(v_proj, mixed);
  EXPECT_EQ(down_proj, mixed);
  EXPECT_EQ(up_proj, std::vector<int>(8, 4));
  ModelResult result;
  s = QuantizeModel(Device::Cpu(), nullptr, plan, options, nullptr, nullptr, &result);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(result.layers[0].bits, 6);
  EXPECT_EQ(result.layers[0].bytes_after, 128 * 256 / 256 * 210);  // Q6_K
  EXPECT_EQ(result.layers[2].bytes_after, 256 * 256 / 256 * 144);  // Q4_K

  options.gguf_type = GgufType::kQ4_K;  // types chosen by bit allocation instead
  options.target_bits = 5.2;
  options.allocation_bits = {4, 5, 6};
  ASSERT_TRUE(PlanModel(input, "", options, &plan).ok());
  s = QuantizeModel(Device::Cpu(), nullptr, plan, options, nullptr, nullptr, &result);
  ASSERT_TRUE(s.ok()) << s.message();
  std::set<int> widths;
  for (const LayerSummary& layer : result.layers) widths.insert(layer.bits);
  EXPECT_GT(widths.size(), 1u);
  EXPECT_LE(result.average_bits, 5.2);
  EXPECT_GT(result.average_bits, 4.5);  // Q4_K alone is 4.5 bits per weight
  options.allocation_bits = {3, 4};
  EXPECT_EQ(PlanModel(input, "", options, &plan).message(),
            "allocation_bits: K-quant types are 4 (Q4_K), 5 (Q5_K) and 6 (Q6_K) bits, not 3");
  options.target_bits = 0;
  options.gguf_type = GgufType::kQ4_K_M;

  options.layer.k_quant = false;  // the options must agree
  EXPECT_EQ(PlanModel(input, "", options, &plan).message(),
            "gguf_type: Q4_K_M rounds on K-quant grids (k_quant)");
  options.layer.k_quant = true;
  options.gguf_type = GgufType::kQ5_K;
  EXPECT_EQ(PlanModel(input, "", options, &plan).message(),
            "bits: gguf_type Q5_K is 5-bit, not 4");
}

TEST(KQuantCuda, MatchesTheCpu) {
  SOLVERD_REQUIRE_CUDA();
  TestStream stream;
  ASSERT_TRUE(stream.status().ok());
  const Layer l = MakeLayer(16, 512, 256, true, 8);
  for (const Method method : {Method::kRtn, Method::kGptq}) {
    for (const int bits : {4, 5, 6}) {
      const QuantizedLayer cpu = Quantize(l, KOptions(method, bits));
      const QuantizedLayer gpu = Quantize(l, KOptions(method, bits), Device::Cuda(0),
                                          stream.get());
      EXPECT_EQ(cpu.codes, gpu.codes) << MethodName(method) << " " << bits;
      EXPECT_EQ(cpu.super_scales, gpu.super_scales) << MethodName(method) << " " << bits;
      EXPECT_EQ(cpu.dequantized, gpu.dequantized) << MethodName(method) << " " << bits;
    }
  }
}

}  // namespace
}  // namespace solverd::quant
