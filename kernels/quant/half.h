// IEEE binary16 (fp16) and bfloat16 conversions, usable from CPU code and
// CUDA kernels, so both backends store scales and read weights identically.
// float -> 16 bit rounds to nearest, ties to even; NaN stays NaN, overflow
// becomes infinity. Conversions to float are exact. Pure functions.
#ifndef SOLVERD_KERNELS_QUANT_HALF_H_
#define SOLVERD_KERNELS_QUANT_HALF_H_

#include <cstdint>
#include <cstring>

#include "common/host_device.h"

namespace solverd::quant {

SOLVERD_HD inline uint32_t FloatBits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof(u));
  return u;
}

SOLVERD_HD inline float BitsFloat(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof(f));
  return f;
}

SOLVERD_HD inline float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f) return BitsFloat(sign | 0x7f800000u | (mantissa << 13));
  if (exponent != 0) return BitsFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
  if (mantissa == 0) return BitsFloat(sign);
  // Subnormal: mantissa * 2^-24, exact in float.
  const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
  return sign != 0 ? -magnitude : magnitude;
}

SOLVERD_HD inline uint16_t FloatToHalf(float f) {
  const uint32_t u = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t magnitude = u & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (magnitude >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (magnitude < 0x38800000u) {
    // Below the smallest normal half: round |f| / 2^-24 to an integer.
    const uint32_t exponent = magnitude >> 23;
    if (exponent < 102) return sign;  // under half the smallest subnormal
    const uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exponent;
    uint32_t result = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (result & 1u))) ++result;
    return static_cast<uint16_t>(sign | result);
  }
  uint32_t result = ((magnitude >> 13) - (112u << 10));
  const uint32_t rest = magnitude & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (result & 1u))) ++result;
  return static_cast<uint16_t>(sign | result);
}

SOLVERD_HD inline float BfloatToFloat(uint16_t b) {
  return BitsFloat(static_cast<uint32_t>(b) << 16);
}

SOLVERD_HD inline uint16_t FloatToBfloat(float f) {
  const uint32_t u = FloatBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  const uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>((u + rounding) >> 16);
}

// `f` as fp16 would store it: what a stored scale really is.
SOLVERD_HD inline float RoundToHalf(float f) { return HalfToFloat(FloatToHalf(f)); }

}  // namespace solverd::quant

#endif  // SOLVERD_KERNELS_QUANT_HALF_H_
