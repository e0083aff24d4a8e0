// Shared by the sor kernel tests.
#ifndef SOLVERD_TESTS_KERNELS_SOR_TEST_UTIL_H_
#define SOLVERD_TESTS_KERNELS_SOR_TEST_UTIL_H_

#include <cstdint>
#include <random>
#include <vector>

namespace solverd::sor {

// Standard normal entries, reproducible from `seed`.
inline std::vector<double> RandomVector(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<double> v(n);
  for (double& x : v) x = normal(rng);
  return v;
}

}  // namespace solverd::sor

#endif  // SOLVERD_TESTS_KERNELS_SOR_TEST_UTIL_H_
