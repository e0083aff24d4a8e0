// Per-element quantization math shared by the CPU backend and the CUDA
// kernels, so both choose the same codes: uniform grids (scale and zero
// point per group, scale rounded to fp16), the range-shrink search, and
// nearest-entry lookup in a sorted code book. Products and sums are
// rounded separately (no fused multiply-add) in the same order on both.
// Pure functions, safe from any thread and any kernel.
#ifndef SOLVERD_KERNELS_QUANT_QUANT_MATH_H_
#define SOLVERD_KERNELS_QUANT_QUANT_MATH_H_

#include <math.h>
#include <stdint.h>

#include "common/host_device.h"
#include "quant/half.h"

namespace solverd::quant::internal {

// Shrink factors the clip search tries: 1, 0.975, ..., 0.225.
inline constexpr int kClipSteps = 32;
SOLVERD_HD inline float ClipShrink(int step) { return 1.0f - 0.025f * static_cast<float>(step); }

// The smallest and largest scales fp16 stores (a subnormal, and 65504).
inline constexpr float kMinHalfScale = 5.9604644775390625e-8f;
inline constexpr float kMaxHalfScale = 65504.0f;

// w ~ scale * (code - zero) - offset. Only K-quant grids (kquant_math.h)
// have an offset; their scale may be 0, which puts every code at `zero`.
struct Grid {
  float scale = 1;
  float zero = 0;  // an integer, in code units
  float offset = 0;
  int maxq = 15;
};

SOLVERD_HD inline float SquareAdd(float d, float acc) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(__fmul_rn(d, d), acc);
#else
  return d * d + acc;  // quant CPU files are built with -ffp-contract=off
#endif
}

SOLVERD_HD inline float Clamp(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }

// The grid for values in [lo, hi] (widened to include 0, as GPTQ does, so
// zero is exactly representable).
SOLVERD_HD inline Grid GridFor(float lo, float hi, int bits, bool symmetric) {
  Grid g;
  g.maxq = (1 << bits) - 1;
  lo = lo < 0 ? lo : 0;
  hi = hi > 0 ? hi : 0;
  if (symmetric) {
    const float a = -lo > hi ? -lo : hi;
    lo = -a;
    hi = a;
  }
  if (lo == hi) {
    lo = -1;
    hi = 1;
  }
  g.scale = RoundToHalf(Clamp((hi - lo) / static_cast<float>(g.maxq), kMinHalfScale,
                              kMaxHalfScale));
  g.zero = symmetric ? static_cast<float>((g.maxq + 1) / 2)
                     : Clamp(rintf(-lo / g.scale), 0, static_cast<float>(g.maxq));
  return g;
}

SOLVERD_HD inline int CodeOf(float w, const Grid& g) {
  if (g.scale == 0) return static_cast<int>(g.zero);
  return static_cast<int>(
      Clamp(rintf((w + g.offset) / g.scale) + g.zero, 0, static_cast<float>(g.maxq)));
}

SOLVERD_HD inline float Dequantize(int code, const Grid& g) {
  return g.scale * (static_cast<float>(code) - g.zero) - g.offset;
}

// Sum of squared rounding errors of w[0..n) (stride `stride`) on `g`.
SOLVERD_HD inline float GridError(const float* w, int n, int stride, const Grid& g) {
  float err = 0;
  for (int i = 0; i < n; ++i) {
    const float v = w[i * stride];
    err = SquareAdd(v - Dequantize(CodeOf(v, g), g), err);
  }
  return err;
}

// The smallest and largest of w[0..n) (stride `stride`).
SOLVERD_HD inline void RangeOf(const float* w, int n, int stride, float* lo, float* hi) {
  *lo = *hi = w[0];
  for (int i = 1; i < n; ++i) {
    const float v = w[i * stride];
    *lo = v < *lo ? v : *lo;
    *hi = v > *hi ? v : *hi;
  }
}

// The grid for w[0..n): from its range, or (clip_search) from the shrunk
// range with the least squared error (the first such shrink on ties).
SOLVERD_HD inline Grid ChooseGrid(const float* w, int n, int stride, int bits, bool symmetric,
                                  bool clip_search) {
  float lo, hi;
  RangeOf(w, n, stride, &lo, &hi);
  Grid best = GridFor(lo, hi, bits, symmetric);
  if (!clip_search) return best;
  float best_err = GridError(w, n, stride, best);
  for (int step = 1; step < kClipSteps; ++step) {
    const float s = ClipShrink(step);
    const Grid g = GridFor(lo * s, hi * s, bits, symmetric);
    const float err = GridError(w, n, stride, g);
    if (err < best_err) {
      best = g;
      best_err = err;
    }
  }
  return best;
}

// Round to nearest, one group at a time: chooses the group's grid and
// writes its codes. (HqqGroup in hqq_math.h is the other grid quantizer.)
struct RtnGroup {
  int bits = 4;
  bool symmetric = false;
  bool clip_search = false;

  SOLVERD_HD Grid operator()(const float* w, int n, uint8_t* codes) const {
    const Grid g = ChooseGrid(w, n, 1, bits, symmetric, clip_search);
    for (int i = 0; i < n; ++i) codes[i] = static_cast<uint8_t>(CodeOf(w[i], g));
    return g;
  }
};

// The index of the entry of book[0..n) (ascending) nearest to x; ties go
// to the lower entry.
SOLVERD_HD inline int NearestCode(float x, const float* book, int n) {
  int lo = 0, hi = n - 1;
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (x > (book[mid] + book[mid + 1]) * 0.5f) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

}  // namespace solverd::quant::internal

#endif  // SOLVERD_KERNELS_QUANT_QUANT_MATH_H_
