// The pieces of the sequential pass that PyTorch does not check in
// quant_calibration_test.py: reading the token ids (every way they can be
// wrong), the forward pass's identities (the first position attends to
// itself alone, RoPE leaves position 0 as it is, RMSNorm gives unit RMS),
// its dot products' lanes at widths that are not a multiple of them, and
// the CUDA backend against the CPU's, step by step, and what the pass
// leaves in the plan (the layers it quantized, kept on a cancel).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "quant/formats/safetensors.h"
#include "quant/model.h"
#include "quant/llama_forward.h"
#include "quant/sequential_calibration.h"
#include "quant_test_util.h"

namespace solverd::quant {
namespace {

std::string TokenFile(DType dtype, std::vector<int64_t> shape, const std::vector<int64_t>& ids) {
  std::string bytes;
  for (const int64_t id : ids) {
    if (dtype == DType::kI32) {
      const int32_t v = static_cast<int32_t>(id);
      bytes.append(reinterpret_cast<const char*>(&v), 4);
    } else {
      bytes.append(reinterpret_cast<const char*>(&id), 8);
    }
  }
  SafetensorsWriter w;
  w.Add("tokens", dtype, std::move(shape), bytes);
  return w.Finish();
}

TEST(CalibrationTokens, ReadAsGivenOrRefusedSayingWhy) {
  std::vector<int32_t> ids;
  TokenRuns runs;
  ASSERT_TRUE(ReadCalibrationTokens(TokenFile(DType::kI64, {2, 3}, {1, 2, 3, 4, 5, 6}), 10, 8,
                                    &ids, &runs).ok());
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(runs.sequences, 2);
  EXPECT_EQ(runs.length, 3);
  const auto error = [&](const std::string& file, int64_t max_length = 8) {
    const Status s = ReadCalibrationTokens(file, 10, max_length, &ids, &runs);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    return s.message();
  };
  EXPECT_EQ(error(TokenFile(DType::kI32, {1, 2}, {3, 10})),
            "\"tokens\": entry 1 is 10, outside the vocabulary [0, 10)");
  EXPECT_EQ(error(TokenFile(DType::kI32, {1, 2}, {-1, 0})),
            "\"tokens\": entry 0 is -1, outside the vocabulary [0, 10)");
  EXPECT_EQ(error(TokenFile(DType::kI32, {1, 9}, std::vector<int64_t>(9, 1))),
            "\"tokens\": sequences of 9 tokens exceed the model's context of 8");
  EXPECT_EQ(error(TokenFile(DType::kI32, {4}, {1, 2, 3, 4})),
            "needs the tensor \"tokens\", I32 or I64 [sequences, length]");
  SafetensorsWriter floats;
  floats.Add("tokens", DType::kF32, {1, 1}, std::string(4, '\0'));
  EXPECT_EQ(error(floats.Finish()), "needs the tensor \"tokens\", I32 or I64 [sequences, length]");
}

TEST(LlamaForward, IdentitiesOfTheFirstPosition) {
  LlamaShape shape;
  shape.heads = 4;
  shape.kv_heads = 2;
  shape.head_dim = 8;
  const TokenRuns runs{3, 5};
  std::vector<float> q(static_cast<size_t>(runs.tokens() * 32)), k(runs.tokens() * 16);
  std::vector<float> v(k.size());
  for (size_t i = 0; i < q.size(); ++i) q[i] = std::sin(0.37f * i);
  for (size_t i = 0; i < k.size(); ++i) k[i] = std::cos(0.11f * i), v[i] = 0.01f * i;
  const std::vector<float> before = q;
  ApplyRope(shape, runs, 4, &q);
  for (int64_t s = 0; s < runs.sequences; ++s) {
    for (int64_t c = 0; c < 32; ++c) {
      EXPECT_EQ(q[s * 5 * 32 + c], before[s * 5 * 32 + c]) << "position 0 does not turn";
    }
  }
  EXPECT_NE(q[32], before[32]) << "position 1 does";
  std::vector<float> out;
  CausalAttention(shape, runs, q, k, v, 2, &out);
  for (int64_t s = 0; s < runs.sequences; ++s) {
    for (int64_t h = 0; h < 4; ++h) {  // query head h reads key-value head h / 2
      for (int64_t c = 0; c < 8; ++c) {
        EXPECT_FLOAT_EQ(out[s * 5 * 32 + h * 8 + c], v[s * 5 * 16 + (h / 2) * 8 + c]);
      }
    }
  }
  std::vector<float> normed;
  RmsNorm(before, 32, std::vector<float>(32, 1.0f), 0, &normed);
  double sq = 0;
  for (int c = 0; c < 32; ++c) sq += normed[c] * normed[c];
  EXPECT_NEAR(sq / 32, 1.0, 1e-6);
}

// Shape widths off the lanes (8) and the CUDA tiles (32).
LlamaShape SmallShape() {
  LlamaShape shape;
  shape.hidden = 44;
  shape.intermediate = 70;
  shape.heads = 4;
  shape.kv_heads = 2;
  shape.head_dim = 10;
  return shape;
}

std::vector<float> Values(size_t n, float step, float scale = 0.3f) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * std::sin(step * static_cast<float>(i) + 0.5f);
  return v;
}

// Runs one block on `forward` (weights from Values()) and gives every
// slot after every step, then the Hessian of each group's input.
Status RunBlock(LlamaForward* forward, const LlamaShape& s, const TokenRuns& runs,
                std::vector<std::vector<float>>* slots, std::vector<std::vector<double>>* h) {
  const int64_t q = s.heads * s.head_dim, kv = s.kv_heads * s.head_dim;
  std::vector<int32_t> ids(static_cast<size_t>(runs.tokens()));
  for (size_t t = 0; t < ids.size(); ++t) ids[t] = static_cast<int32_t>(t * 7 % 20);
  const auto snapshot = [&](Slot slot) {
    slots->emplace_back();
    return forward->Read(slot, &slots->back());
  };
  const auto hessian = [&](Slot slot) {
    h->emplace_back();
    return forward->SumOfOuterProducts(slot, &h->back());
  };
  const std::vector<float> bias = Values(static_cast<size_t>(q), 0.9f);
  SOLVERD_RETURN_IF_ERROR(forward->Embed(Values(static_cast<size_t>(20 * s.hidden), 0.37f), ids));
  SOLVERD_RETURN_IF_ERROR(forward->Norm(Values(static_cast<size_t>(s.hidden), 0.1f, 1.0f)));
  SOLVERD_RETURN_IF_ERROR(snapshot(Slot::kNormed));
  SOLVERD_RETURN_IF_ERROR(hessian(Slot::kNormed));
  SOLVERD_RETURN_IF_ERROR(
      forward->Linear(Slot::kNormed, Values(q * s.hidden, 0.11f), &bias, Slot::kQuery));
  SOLVERD_RETURN_IF_ERROR(
      forward->Linear(Slot::kNormed, Values(kv * s.hidden, 0.13f), nullptr, Slot::kKey));
  SOLVERD_RETURN_IF_ERROR(
      forward->Linear(Slot::kNormed, Values(kv * s.hidden, 0.17f), nullptr, Slot::kValue));
  for (const Slot slot : {Slot::kQuery, Slot::kKey, Slot::kValue}) {
    SOLVERD_RETURN_IF_ERROR(snapshot(slot));
  }
  SOLVERD_RETURN_IF_ERROR(forward->Attend());
  SOLVERD_RETURN_IF_ERROR(snapshot(Slot::kMixed));
  SOLVERD_RETURN_IF_ERROR(hessian(Slot::kMixed));
  SOLVERD_RETURN_IF_ERROR(
      forward->Linear(Slot::kMixed, Values(s.hidden * q, 0.19f), nullptr, Slot::kNormed));
  SOLVERD_RETURN_IF_ERROR(forward->AddToResidual());
  SOLVERD_RETURN_IF_ERROR(forward->Norm(Values(static_cast<size_t>(s.hidden), 0.2f, 1.0f)));
  SOLVERD_RETURN_IF_ERROR(forward->Linear(Slot::kNormed, Values(s.intermediate * s.hidden, 0.23f),
                                          nullptr, Slot::kGate));
  SOLVERD_RETURN_IF_ERROR(forward->Linear(Slot::kNormed, Values(s.intermediate * s.hidden, 0.29f),
                                          nullptr, Slot::kUp));
  SOLVERD_RETURN_IF_ERROR(forward->Gate());
  SOLVERD_RETURN_IF_ERROR(snapshot(Slot::kGate));
  SOLVERD_RETURN_IF_ERROR(hessian(Slot::kGate));
  SOLVERD_RETURN_IF_ERROR(forward->Linear(Slot::kGate, Values(s.hidden * s.intermediate, 0.31f),
                                          nullptr, Slot::kNormed));
  SOLVERD_RETURN_IF_ERROR(forward->AddToResidual());
  return snapshot(Slot::kResidual);
}

TEST(LlamaForward, DotProductsSumEveryColumnAtAnyWidth) {
  const std::vector<float> x = Values(3 * 21, 0.7f), w = Values(5 * 21, 0.3f);
  const std::vector<float> bias = Values(5, 1.1f);
  std::vector<float> y;
  Linear(x, 21, w, 5, &bias, 2, &y);
  for (int t = 0; t < 3; ++t) {
    for (int o = 0; o < 5; ++o) {
      double want = bias[o];
      for (int i = 0; i < 21; ++i) want += static_cast<double>(x[t * 21 + i]) * w[o * 21 + i];
      EXPECT_NEAR(y[t * 5 + o], want, 1e-6) << t << "," << o;
    }
  }
}

TEST(LlamaForwardCuda, MatchesTheCpuStepByStep) {
  SOLVERD_REQUIRE_CUDA();
  TestStream stream;
  ASSERT_TRUE(stream.status().ok());
  const LlamaShape shape = SmallShape();
  const TokenRuns runs{3, 37};
  std::unique_ptr<LlamaForward> cpu, gpu;
  ASSERT_TRUE(MakeLlamaForward(Device::Cpu(), nullptr, shape, runs, 2, &cpu).ok());
  const Status made = MakeLlamaForward(Device::Cuda(0), stream.get(), shape, runs, 1, &gpu);
  ASSERT_TRUE(made.ok()) << made.ToString();
  std::vector<std::vector<float>> cpu_slots, gpu_slots;
  std::vector<std::vector<double>> cpu_h, gpu_h;
  ASSERT_TRUE(RunBlock(cpu.get(), shape, runs, &cpu_slots, &cpu_h).ok());
  const Status ran = RunBlock(gpu.get(), shape, runs, &gpu_slots, &gpu_h);
  ASSERT_TRUE(ran.ok()) << ran.ToString();
  ASSERT_EQ(cpu_slots.size(), gpu_slots.size());
  // The same arithmetic: equal but for the last bit of a double exp()
  // rounded into a float, once in a while.
  for (size_t step = 0; step < cpu_slots.size(); ++step) {
    ASSERT_EQ(cpu_slots[step].size(), gpu_slots[step].size());
    for (size_t i = 0; i < cpu_slots[step].size(); ++i) {
      const float a = cpu_slots[step][i], b = gpu_slots[step][i];
      ASSERT_LE(std::fabs(a - b), 1e-6f * std::max(1.0f, std::fabs(a))) << step << ": " << i;
    }
  }
  for (size_t g = 0; g < cpu_h.size(); ++g) {
    ASSERT_EQ(cpu_h[g].size(), gpu_h[g].size());
    for (size_t i = 0; i < cpu_h[g].size(); ++i) {
      ASSERT_LE(std::fabs(cpu_h[g][i] - gpu_h[g][i]), 1e-9 * std::max(1.0, std::fabs(cpu_h[g][i])))
          << "group " << g << ": " << i;
    }
  }
}

// The drift between two passes (sum of x (r - x)^T) as the CPU sums it,
// here from two embeddings of the same tokens.
TEST(LlamaForwardCuda, DriftMatchesTheCpu) {
  SOLVERD_REQUIRE_CUDA();
  TestStream stream;
  ASSERT_TRUE(stream.status().ok());
  const LlamaShape shape = SmallShape();
  const TokenRuns runs{3, 37};
  std::vector<int32_t> ids(static_cast<size_t>(runs.tokens()));
  for (size_t t = 0; t < ids.size(); ++t) ids[t] = static_cast<int32_t>(t * 7 % 10);
  const std::vector<float> quantized = Random(10 * shape.hidden, 5, 0.5f);
  std::vector<float> reference = quantized;
  for (size_t k = 0; k < reference.size(); k += 3) reference[k] += 0.01f * (k % 7);
  std::vector<double> drift[2];
  for (int cuda = 0; cuda < 2; ++cuda) {
    const Device device = cuda ? Device::Cuda(0) : Device::Cpu();
    std::unique_ptr<LlamaForward> x, r;
    ASSERT_TRUE(MakeLlamaForward(device, stream.get(), shape, runs, 2, &x).ok());
    ASSERT_TRUE(MakeLlamaForward(device, stream.get(), shape, runs, 2, &r).ok());
    ASSERT_TRUE(x->Embed(quantized, ids).ok());
    ASSERT_TRUE(r->Embed(reference, ids).ok());
    const Status s = x->SumOfDriftProducts(Slot::kResidual, r.get(), &drift[cuda]);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  ASSERT_EQ(drift[0].size(), static_cast<size_t>(shape.hidden * shape.hidden));
  EXPECT_EQ(drift[0], drift[1]);  // the same differences, summed in the same order
}

std::string Bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

// A two-block Llama checkpoint of SmallShape()'s widths, vocabulary 10.
struct TinyLlama {
  std::string file;
  ModelPlan plan;
  ModelOptions options;

  TinyLlama() {
    const LlamaShape s = SmallShape();
    const int64_t q = s.heads * s.head_dim, kv = s.kv_heads * s.head_dim;
    SafetensorsWriter w;
    uint32_t seed = 1;
    const auto add = [&](const std::string& name, std::vector<int64_t> shape) {
      int64_t n = 1;
      for (const int64_t d : shape) n *= d;
      const bool norm = shape.size() == 1;
      std::vector<float> v = Random(n, seed++, norm ? 0.1f : 0.3f);
      if (norm) for (float& x : v) x += 1;
      w.Add(name, DType::kF32, std::move(shape), Bytes(v));
    };
    add("model.embed_tokens.weight", {10, s.hidden});
    for (int b = 0; b < 2; ++b) {
      const std::string p = "model.layers." + std::to_string(b) + ".";
      add(p + "input_layernorm.weight", {s.hidden});
      add(p + "self_attn.q_proj.weight", {q, s.hidden});
      add(p + "self_attn.k_proj.weight", {kv, s.hidden});
      add(p + "self_attn.v_proj.weight", {kv, s.hidden});
      add(p + "self_attn.o_proj.weight", {s.hidden, q});
      add(p + "post_attention_layernorm.weight", {s.hidden});
      add(p + "mlp.gate_proj.weight", {s.intermediate, s.hidden});
      add(p + "mlp.up_proj.weight", {s.intermediate, s.hidden});
      add(p + "mlp.down_proj.weight", {s.hidden, s.intermediate});
    }
    add("model.norm.weight", {s.hidden});
    add("lm_head.weight", {10, s.hidden});
    file = w.Finish();
    ModelInput input;
    EXPECT_TRUE(ParseSafetensors(file, &input.weights).ok());
    ModelConfig& c = input.config;
    c.model_type = "llama";
    c.vocab_size = 10;
    c.hidden_size = s.hidden;
    c.intermediate_size = s.intermediate;
    c.num_hidden_layers = 2;
    c.num_attention_heads = s.heads;
    c.num_key_value_heads = s.kv_heads;
    c.head_dim = s.head_dim;
    options.layer.method = Method::kGptq;
    options.layer.bits = 3;
    options.layer.group_size = 0;
    options.calibration_from_tokens = true;
    options.exclude = DefaultExcludes();
    const Status planned = PlanModel(std::move(input), "", options, &plan);
    EXPECT_TRUE(planned.ok()) << planned.message();
  }

  Status Pass(ProgressSink* sink, const CancelToken* cancel, std::string* hessians) {
    std::vector<int32_t> ids(2 * 9);
    for (size_t t = 0; t < ids.size(); ++t) ids[t] = static_cast<int32_t>(t * 3 % 10);
    return SequentialCalibration(Device::Cpu(), nullptr, &plan, options, ids, TokenRuns{2, 9},
                                 sink, cancel, "", hessians);
  }
};

// Cancels its token at the n-th report.
class CancelAt final : public ProgressSink {
 public:
  CancelAt(int n, CancelToken* token) : left_(n), token_(token) {}
  void Report(const Progress& p) override {
    stages.push_back(p.stage);
    if (--left_ == 0) token_->Cancel();
  }
  std::vector<std::string> stages;

 private:
  int left_;
  CancelToken* const token_;
};

TEST(SequentialCalibration, ACancelKeepsTheLayersItFinished) {
  TinyLlama model;
  CancelToken cancel;
  CancelAt sink(5, &cancel);
  std::string hessians;
  const Status s = model.Pass(&sink, &cancel, &hessians);
  EXPECT_EQ(s.code(), StatusCode::kCancelled) << s.message();
  ASSERT_EQ(model.plan.done_layers.size(), 5u);
  EXPECT_EQ(sink.stages.front(), "calibration: model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(sink.stages.back(), "calibration: model.layers.0.mlp.gate_proj.weight");
  for (const auto& [name, done] : model.plan.done_layers) {
    EXPECT_EQ(done.summary.name, name);
    EXPECT_EQ(done.summary.tokens, 18);
    EXPECT_TRUE(done.layer.dequantized.empty()) << "not held twice";
    EXPECT_EQ(done.layer.codes.size(), static_cast<size_t>(done.summary.rows * done.summary.cols));
  }
}

TEST(SequentialCalibration, TheModelIsWrittenFromThePassesLayers) {
  TinyLlama model;
  std::string hessians;
  const Status s = model.Pass(nullptr, nullptr, &hessians);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(model.plan.done_layers.size(), 14u);  // 7 per block; lm_head is left alone
  // Quantizing it again changes nothing but the time; a layer that is done
  // keeps the pass's time, so none was quantized twice.
  ASSERT_TRUE(ParseSafetensors(hessians, &model.plan.calibration).ok());
  ModelResult result;
  const Status written =
      QuantizeModel(Device::Cpu(), nullptr, model.plan, model.options, nullptr, nullptr, &result);
  ASSERT_TRUE(written.ok()) << written.message();
  ASSERT_EQ(result.layers.size(), 14u);
  for (const LayerSummary& layer : result.layers) {
    const LayerSummary& pass = model.plan.done_layers.at(layer.name).summary;
    EXPECT_EQ(layer.report.seconds, pass.report.seconds) << layer.name;
    EXPECT_EQ(layer.report.relative_output_error, pass.report.relative_output_error);
  }
  ModelPlan again = model.plan;
  again.done_layers.clear();
  ModelResult requantized;
  const Status rewritten =
      QuantizeModel(Device::Cpu(), nullptr, again, model.options, nullptr, nullptr, &requantized);
  ASSERT_TRUE(rewritten.ok()) << rewritten.message();
  EXPECT_EQ(requantized.file, result.file) << "the same codes from the Hessians";
}

TEST(SequentialCalibration, ThePlanRefusesLayersThePassCannotCalibrate) {
  TinyLlama model;
  const auto plan = [&](Method method, std::vector<std::string> exclude) {
    ModelInput input;
    EXPECT_TRUE(ParseSafetensors(model.file, &input.weights).ok());
    input.config = model.plan.config;
    ModelOptions o = model.options;
    o.layer.method = method;
    o.exclude = std::move(exclude);
    ModelPlan out;
    return PlanModel(std::move(input), "", o, &out);
  };
  EXPECT_EQ(plan(Method::kGptq, {}).message(),
            "model: tensor \"model.embed_tokens.weight\" is selected, and the sequential pass "
            "calibrates the decoder blocks' projections only: exclude it, or quantize it with a "
            "method that needs no calibration");
  EXPECT_EQ(plan(Method::kDmmv, DefaultExcludes()).message(),
            "method dmmv needs rows of inputs, which the sequential pass from "
            "calibration_tokens does not keep: send them in a calibration file");
  EXPECT_TRUE(plan(Method::kRtn, {}).ok()) << "rtn needs no calibration";
  EXPECT_TRUE(CalibratedBySequentialPass("model.layers.12.mlp.down_proj.weight"));
  EXPECT_FALSE(CalibratedBySequentialPass("model.layers.x.mlp.down_proj.weight"));
  EXPECT_FALSE(CalibratedBySequentialPass("model.layers.1.mlp.down_proj.bias"));
}

}  // namespace
}  // namespace solverd::quant
