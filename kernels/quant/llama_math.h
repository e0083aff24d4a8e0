// The arithmetic of the Llama forward pass that both backends run per
// element (llama_forward.cc on the CPU, llama_forward_cuda.cu on CUDA), so
// that both produce the same floats: every dot product is summed in
// kDotLanes interleaved float partial sums (lane i % kDotLanes), which the
// CPU vectorises and a CUDA thread keeps in registers, then combined
// pairwise; norms and softmax sum in double in index order. Both files
// are built without fused multiply-adds. The only difference left is the
// last bit of the double exp() in the softmax and SiLU, which the rounding
// to float almost always hides (the tests state the tolerance).
// Pure functions: safe from any thread.
#ifndef SOLVERD_KERNELS_QUANT_LLAMA_MATH_H_
#define SOLVERD_KERNELS_QUANT_LLAMA_MATH_H_

#include <cmath>
#include <cstdint>

#include "common/host_device.h"

namespace solverd::quant::internal {

inline constexpr int kDotLanes = 8;

// ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).
SOLVERD_HD inline float CombineLanes(const float* lanes) {
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
         ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

// sum_i a[i] * b[i] in the lanes' order.
SOLVERD_HD inline float LanesDot(const float* a, const float* b, int64_t n) {
  float lanes[kDotLanes] = {};
  int64_t i = 0;
  for (; i + kDotLanes <= n; i += kDotLanes) {
    for (int l = 0; l < kDotLanes; ++l) lanes[l] += a[i + l] * b[i + l];
  }
  for (int l = 0; i < n; ++i, ++l) lanes[l] += a[i] * b[i];
  return CombineLanes(lanes);
}

// A linear layer's output from its dot product (no bias: + 0).
SOLVERD_HD inline float LinearOutput(float dot, const float* bias, int64_t o) {
  return dot + (bias != nullptr ? bias[o] : 0.0f);
}

// 1 / sqrt(mean(x^2) + eps) of one token's row.
SOLVERD_HD inline float RmsScale(const float* row, int64_t width, double eps) {
  double sq = 0;
  for (int64_t i = 0; i < width; ++i) sq += static_cast<double>(row[i]) * row[i];
  return static_cast<float>(1.0 / sqrt(sq / static_cast<double>(width) + eps));
}

// silu(gate) * up, SiLU in double rounded to float as PyTorch's float one.
SOLVERD_HD inline float SiluTimes(float gate, float up) {
  const double g = gate;
  return static_cast<float>(g / (1.0 + exp(-g))) * up;
}

// Rotates the pair (x[i], x[i + half]) by the angle whose cosine and sine
// are c and s.
SOLVERD_HD inline void RotatePair(float c, float s, float* first, float* second) {
  const float a = *first, b = *second;
  *first = a * c - b * s;
  *second = b * c + a * s;
}

}  // namespace solverd::quant::internal

#endif  // SOLVERD_KERNELS_QUANT_LLAMA_MATH_H_
