// llama.cpp's K-quant grids (ggml's Q4_K, Q5_K and Q6_K), shared by the CPU
// backend and the CUDA kernels so both choose the same codes. A row is cut
// into super-blocks of 256 weights, each into sub-blocks (groups) with a
// grid of their own:
//  - Q4_K / Q5_K (4 / 5 bits): 8 groups of 32, w = d sc * code - dmin m,
//    sc and m 6-bit integers per group, d and dmin fp16 per super-block;
//  - Q6_K (6 bits): 16 groups of 16, w = d sc * (code - 32), sc a signed
//    8-bit integer per group, d fp16 per super-block.
// Each group's grid is a Grid (quant_math.h) with scale = d sc, zero 0 or
// 32 and offset = dmin m, so every grid method can round on it.
// Choosing a super-block's grids follows ggml's reference quantizer: each
// group's scale (and min) from a weighted least-squares search over
// candidate steps, then the scales quantized against the largest. Sums are
// rounded step by step in the same order on both backends (quant CPU files
// are built with -ffp-contract=off, the CUDA ones with --fmad=false).
// Pure functions, safe from any thread and any kernel.
#ifndef SOLVERD_KERNELS_QUANT_KQUANT_MATH_H_
#define SOLVERD_KERNELS_QUANT_KQUANT_MATH_H_

#include <math.h>
#include <stdint.h>

#include "common/host_device.h"
#include "quant/half.h"
#include "quant/quant_math.h"

namespace solverd::quant::internal {

inline constexpr int kSuperBlock = 256;  // weights per K-quant super-block (ggml's QK_K)
inline constexpr int kMaxKGroups = 16;   // groups per super-block, at most (Q6_K)

SOLVERD_HD inline bool IsKQuantBits(int bits) { return bits >= 4 && bits <= 6; }
SOLVERD_HD inline int KGroupSize(int bits) { return bits == 6 ? 16 : 32; }
SOLVERD_HD inline int KGroups(int bits) { return kSuperBlock / KGroupSize(bits); }

// The bytes of one ggml block of 256 weights: Q4_K 144, Q5_K 176, Q6_K 210.
SOLVERD_HD inline int KBlockBytes(int bits) {
  return bits == 4 ? 144 : bits == 5 ? 176 : 210;
}

// The fitted grid of one group before its scale is quantized:
// w ~ scale * code - min (asymmetric, min >= 0) or scale * (code - 32).
struct KFit {
  float scale = 0;
  float min = 0;
};

// ggml's weighting of a Q4_K / Q5_K group: each weight by the group's RMS
// plus its own magnitude, so large weights are rounded more carefully.
SOLVERD_HD inline float KWeight(float rms, float x) { return rms + fabsf(x); }

// Q4_K / Q5_K: a grid for x[0..n) with codes 0..maxq. Starts from the
// range, then tries steps of (maxq + rmin + rdelta s) / range, s = 0..steps,
// refitting scale and min by weighted least squares on each try's codes
// (min held at 0 where the fit would make it negative), and keeps the try
// with the least weighted squared error.
SOLVERD_HD inline KFit FitAsymmetric(const float* x, int n, int maxq, float rmin, float rdelta,
                                     int steps) {
  float sum_x2 = 0;
  for (int i = 0; i < n; ++i) sum_x2 = SquareAdd(x[i], sum_x2);
  const float rms = sqrtf(sum_x2 / static_cast<float>(n));
  float lo = x[0], hi = x[0], sum_w = 0, sum_wx = 0;
  for (int i = 0; i < n; ++i) {
    lo = x[i] < lo ? x[i] : lo;
    hi = x[i] > hi ? x[i] : hi;
    const float w = KWeight(rms, x[i]);
    sum_w = sum_w + w;
    sum_wx = sum_wx + w * x[i];
  }
  lo = lo > 0 ? 0 : lo;
  KFit best;
  best.min = -lo;
  if (hi == lo) return best;  // all equal: every weight is -lo (scale 0)
  const float top = static_cast<float>(maxq);
  best.scale = (hi - lo) / top;
  float best_error = 0;
  const float first_step = top / (hi - lo);
  for (int i = 0; i < n; ++i) {
    const float code = Clamp(rintf(first_step * (x[i] - lo)), 0, top);
    const float diff = best.scale * code + lo - x[i];
    best_error = best_error + KWeight(rms, x[i]) * (diff * diff);
  }
  for (int s = 0; s <= steps; ++s) {
    const float step = (rmin + rdelta * static_cast<float>(s) + top) / (hi - lo);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const float l = Clamp(rintf(step * (x[i] - lo)), 0, top);
      const float w = KWeight(rms, x[i]);
      sum_l = sum_l + w * l;
      sum_l2 = sum_l2 + w * (l * l);
      sum_xl = sum_xl + w * (l * x[i]);
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (!(det > 0)) continue;
    float scale = (sum_w * sum_xl - sum_wx * sum_l) / det;
    float offset = (sum_l2 * sum_wx - sum_l * sum_xl) / det;
    if (offset > 0) {
      offset = 0;
      scale = sum_xl / sum_l2;
    }
    float error = 0;
    for (int i = 0; i < n; ++i) {
      const float l = Clamp(rintf(step * (x[i] - lo)), 0, top);
      const float diff = scale * l + offset - x[i];
      error = error + KWeight(rms, x[i]) * (diff * diff);
    }
    if (error < best_error) {
      best_error = error;
      best.scale = scale;
      best.min = -offset;
    }
  }
  return best;
}

// Q6_K: a symmetric grid for x[0..n) with codes -32..31 around 32, the
// scale signed so the largest-magnitude weight lands on -32; tries
// 32 + 0.1 s for s = -9..9 and keeps the least error weighted by x^2.
SOLVERD_HD inline KFit FitSymmetric(const float* x, int n) {
  constexpr float kHalf = 32;
  float amax = 0, extreme = 0;
  for (int i = 0; i < n; ++i) {
    if (fabsf(x[i]) > amax) {
      amax = fabsf(x[i]);
      extreme = x[i];
    }
  }
  KFit best;
  if (amax < 1e-15f) return best;
  float best_score = -1;
  for (int s = -9; s <= 9; ++s) {
    const float step = -(kHalf + 0.1f * static_cast<float>(s)) / extreme;
    float sum_lx = 0, sum_l2 = 0;
    for (int i = 0; i < n; ++i) {
      const float l = Clamp(rintf(step * x[i]), -kHalf, kHalf - 1);
      const float w = x[i] * x[i];
      sum_lx = sum_lx + w * (x[i] * l);
      sum_l2 = sum_l2 + w * (l * l);
    }
    // The least-squares scale sum_lx / sum_l2 leaves an error of
    // sum(w x^2) - sum_lx^2 / sum_l2: the larger the score, the smaller.
    if (sum_l2 > 0 && (best_score < 0 || sum_lx * sum_lx > best_score * sum_l2)) {
      best.scale = sum_lx / sum_l2;
      best_score = best.scale * sum_lx;
    }
  }
  return best;
}

// The grid of group `g` of a super-block from its quantized integers.
SOLVERD_HD inline Grid KGrid(int bits, float d, float dmin, int sc, int m) {
  Grid grid;
  grid.maxq = (1 << bits) - 1;
  grid.scale = d * static_cast<float>(sc);
  grid.zero = bits == 6 ? 32.0f : 0.0f;
  grid.offset = bits == 6 ? 0.0f : dmin * static_cast<float>(m);
  return grid;
}

// Chooses the grids of the super-block x[0..256): `grids` gets KGroups(bits)
// of them, *d and *dmin the super-block's fp16 scales (dmin 0 for Q6_K).
SOLVERD_HD inline void ChooseKSuperBlock(const float* x, int bits, Grid* grids, float* d,
                                         float* dmin) {
  const int group = KGroupSize(bits), groups = KGroups(bits);
  KFit fits[kMaxKGroups];
  *dmin = 0;
  if (bits == 6) {
    float extreme = 0;
    for (int g = 0; g < groups; ++g) {
      fits[g] = FitSymmetric(x + g * group, group);
      if (fabsf(fits[g].scale) > fabsf(extreme)) extreme = fits[g].scale;
    }
    const float step = fabsf(extreme) < 1e-15f ? 0.0f : -128.0f / extreme;
    *d = step == 0 ? 0.0f : RoundToHalf(1.0f / step);
    for (int g = 0; g < groups; ++g) {
      const float sc = step == 0 ? 0.0f : rintf(step * fits[g].scale);
      grids[g] = KGrid(bits, *d, 0, static_cast<int>(sc < 127 ? sc : 127), 0);
    }
    return;
  }
  float max_scale = 0, max_min = 0;
  for (int g = 0; g < groups; ++g) {
    fits[g] = bits == 4 ? FitAsymmetric(x + g * group, group, 15, -1.0f, 0.1f, 20)
                        : FitAsymmetric(x + g * group, group, 31, -0.5f, 0.1f, 15);
    max_scale = fits[g].scale > max_scale ? fits[g].scale : max_scale;
    max_min = fits[g].min > max_min ? fits[g].min : max_min;
  }
  const float scale_step = max_scale > 0 ? 63.0f / max_scale : 0.0f;
  const float min_step = max_min > 0 ? 63.0f / max_min : 0.0f;
  *d = RoundToHalf(max_scale / 63.0f);
  *dmin = RoundToHalf(max_min / 63.0f);
  for (int g = 0; g < groups; ++g) {
    const float sc = Clamp(rintf(scale_step * fits[g].scale), 0, 63);
    const float m = Clamp(rintf(min_step * fits[g].min), 0, 63);
    grids[g] = KGrid(bits, *d, *dmin, static_cast<int>(sc), static_cast<int>(m));
  }
}

// Round to nearest on K-quant grids: chooses the super-block x[0..256)'s
// grids and writes its codes.
SOLVERD_HD inline void QuantizeKSuperBlock(const float* x, int bits, Grid* grids, float* d,
                                           float* dmin, uint8_t* codes) {
  ChooseKSuperBlock(x, bits, grids, d, dmin);
  const int group = KGroupSize(bits);
  for (int i = 0; i < kSuperBlock; ++i) {
    codes[i] = static_cast<uint8_t>(CodeOf(x[i], grids[i / group]));
  }
}

}  // namespace solverd::quant::internal

#endif  // SOLVERD_KERNELS_QUANT_KQUANT_MATH_H_
