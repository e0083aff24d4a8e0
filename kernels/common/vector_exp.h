// VectorExp: exp() written so that compilers vectorise loops calling it
// (no branches, no libm call, integer tricks instead of conversions), for
// the CPU backends' hot loops. Accurate to ~1 ulp on [-708, 709]; returns
// exactly 0 below -708 (where exp is subnormal) and for -inf. Host only.
// Pure functions, safe from any thread.
#ifndef SOLVERD_KERNELS_COMMON_VECTOR_EXP_H_
#define SOLVERD_KERNELS_COMMON_VECTOR_EXP_H_

#include <algorithm>
#include <bit>
#include <cstdint>

namespace solverd {

inline double VectorExp(double x) {
  constexpr double kLog2e = 1.4426950408889634;
  constexpr double kLn2Hi = 6.93147180369123816490e-01;
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  constexpr double kRoundMagic = 6755399441055744.0;  // 1.5 * 2^52
  const double clamped = std::min(std::max(x, -708.0), 709.0);
  // k = round(x / ln 2), read from the low bits of k + magic.
  const double shifted = clamped * kLog2e + kRoundMagic;
  const double k = shifted - kRoundMagic;
  const int64_t k_int = std::bit_cast<int64_t>(shifted) - std::bit_cast<int64_t>(kRoundMagic);
  const double scale = std::bit_cast<double>((k_int + 1023) << 52);
  // exp(r) on |r| <= ln2 / 2 by its Taylor series to r^13 (error < 1e-17).
  const double r = (clamped - k * kLn2Hi) - k * kLn2Lo;
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  const double in_range = static_cast<double>(x >= -708.0);  // 0 for -inf
  return p * scale * in_range;
}

}  // namespace solverd

#endif  // SOLVERD_KERNELS_COMMON_VECTOR_EXP_H_
