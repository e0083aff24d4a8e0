// The pieces of the sequential pass that PyTorch does not check in
// quant_calibration_test.py: reading the token ids (every way they can be
// wrong) and the forward pass's identities (the first position attends to
// itself alone, RoPE leaves position 0 as it is, RMSNorm gives unit RMS).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

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

}  // namespace
}  // namespace solverd::quant
