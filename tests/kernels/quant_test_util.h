// Shared by the quant kernel tests: seeded Gaussian weights, and layers
// with calibration inputs.
#ifndef SOLVERD_TESTS_KERNELS_QUANT_TEST_UTIL_H_
#define SOLVERD_TESTS_KERNELS_QUANT_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "quant/quant.h"

namespace solverd::quant {

// `n` draws of N(0, scale^2), the same for the same seed.
inline std::vector<float> Random(int64_t n, uint32_t seed, float scale = 1) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = normal(rng);
  return v;
}

// rows x cols weights; tokens x cols inputs with correlated columns
// (each a mix of a few shared factors plus noise) when `correlated`.
inline Layer MakeLayer(int64_t rows, int64_t cols, int64_t tokens, bool correlated,
                       uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0, 1);
  Layer l;
  l.rows = rows;
  l.cols = cols;
  l.tokens = tokens;
  for (int64_t i = 0; i < rows * cols; ++i) l.weights.push_back(0.1f * normal(rng));
  const int factors = 4;
  std::vector<float> mix(factors * cols);
  for (float& m : mix) m = normal(rng);
  for (int64_t t = 0; t < tokens; ++t) {
    float f[factors];
    for (float& v : f) v = normal(rng);
    for (int64_t c = 0; c < cols; ++c) {
      float x = normal(rng) * (correlated ? 0.2f : 1.0f);
      if (correlated) {
        for (int k = 0; k < factors; ++k) x += f[k] * mix[k * cols + c];
      }
      l.inputs.push_back(x);
    }
  }
  return l;
}

// `l` quantized with `o` on `device`, failing the test on an error.
inline QuantizedLayer Quantize(const Layer& l, const Options& o, Device device = Device::Cpu(),
                               StreamHandle stream = nullptr) {
  QuantizedLayer q;
  const Status s = QuantizeLayer(device, stream, l, o, nullptr, &q);
  EXPECT_TRUE(s.ok()) << s.message();
  return q;
}

}  // namespace solverd::quant

#endif  // SOLVERD_TESTS_KERNELS_QUANT_TEST_UTIL_H_
