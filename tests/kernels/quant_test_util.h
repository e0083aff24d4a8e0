// Shared by the quant kernel tests: seeded Gaussian weights.
#ifndef SOLVERD_TESTS_KERNELS_QUANT_TEST_UTIL_H_
#define SOLVERD_TESTS_KERNELS_QUANT_TEST_UTIL_H_

#include <cstdint>
#include <random>
#include <vector>

namespace solverd::quant {

// `n` draws of N(0, scale^2), the same for the same seed.
inline std::vector<float> Random(int64_t n, uint32_t seed, float scale = 1) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = normal(rng);
  return v;
}

}  // namespace solverd::quant

#endif  // SOLVERD_TESTS_KERNELS_QUANT_TEST_UTIL_H_
