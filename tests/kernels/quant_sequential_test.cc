// The pieces of the sequential pass that PyTorch does not check in
// quant_calibration_test.py: reading the token ids (every way they can be
// wrong), the forward pass's identities (the first position attends to
// itself alone, RoPE leaves position 0 as it is, RMSNorm gives unit RMS),
// its dot products' lanes at widths that are not a multiple of them, and
// the CUDA backend against the CPU's, step by step.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "quant/formats/safetensors.h"
#include "quant/llama_forward.h"
#include "quant/sequential_calibration.h"

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

}  // namespace
}  // namespace solverd::quant
