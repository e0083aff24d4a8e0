// Shared by the DMMV kernel tests: the objective of an assignment computed
// directly in float64 (dense or sparse X), the exact optimum by
// enumeration, and a CPU solve that must succeed.
#ifndef SOLVERD_TESTS_KERNELS_DMMV_TEST_UTIL_H_
#define SOLVERD_TESTS_KERNELS_DMMV_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "dmmv/dmmv.h"

namespace solverd::dmmv::test_util {

// t and L2 of `values`.
inline std::pair<double, double> Violation(const Problem& p, const Instance& inst,
                                           const std::vector<double>& values) {
  double t = 0, sum = 0;
  for (int64_t k = 0; k < p.rows; ++k) {
    double d = -inst.b[k];
    if (p.sparse()) {
      for (int64_t e = p.x_csr.row_offsets[k]; e < p.x_csr.row_offsets[k + 1]; ++e) {
        d += p.x_csr.values[e] * values[p.x_csr.columns[e]];
      }
    } else {
      for (int64_t j = 0; j < p.cols; ++j) d += p.x[k * p.cols + j] * values[j];
    }
    const double v = (inst.weights.empty() ? 1.0 : inst.weights[k]) * std::fabs(d);
    t = std::max(t, v);
    sum += v * v;
  }
  return {t, std::sqrt(sum)};
}

// The best t over all assignments, or with `least_squares` the best L2 of
// those whose t is at most `cap`.
inline double BruteForce(const Problem& p, const Instance& inst, bool least_squares = false,
                         double cap = INFINITY) {
  auto levels = [&](int64_t j) -> const Levels& {
    return inst.levels.size() == 1 ? inst.levels[0] : inst.levels[j];
  };
  int64_t total = 1;
  for (int64_t j = 0; j < p.cols; ++j) total *= levels(j).size();
  double best = INFINITY;
  std::vector<double> values(p.cols);
  for (int64_t code = 0; code < total; ++code) {
    int64_t c = code;
    for (int64_t j = 0; j < p.cols; c /= levels(j).size(), ++j) {
      values[j] = levels(j).Value(c % levels(j).size());
    }
    const auto [t, l2] = Violation(p, inst, values);
    if (t <= cap) best = std::min(best, least_squares ? l2 : t);
  }
  return best;
}

inline Result SolveCpu(const Problem& p, const Options& o) {
  Result r;
  Status s = Solve(Device::Cpu(), nullptr, p, o, nullptr, nullptr, &r);
  EXPECT_TRUE(s.ok()) << s.message();
  return r;
}

}  // namespace solverd::dmmv::test_util

#endif  // SOLVERD_TESTS_KERNELS_DMMV_TEST_UTIL_H_
