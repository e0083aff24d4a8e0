// Percentile: the q-quantile (0..1) of a sample, nearest rank; 0 when empty.
// Shared by the service load generators.
#ifndef SOLVERD_BENCH_COMMON_PERCENTILE_H_
#define SOLVERD_BENCH_COMMON_PERCENTILE_H_

#include <algorithm>
#include <vector>

namespace solverd::bench {

inline double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * (v.size() - 1) + 0.5))];
}

}  // namespace solverd::bench

#endif  // SOLVERD_BENCH_COMMON_PERCENTILE_H_
