// Half-quadratic quantization (HQQ, Badri and Shaji, 2023) of one group of
// weights, shared by the CPU backend and the CUDA kernel. The scale stays
// that of the group's range; the zero point, a real number here, is
// optimized without calibration data by alternating
//   e = s * shrink_p((w - s * (q - z)) / s, beta)  (the sparse error, an l_p prox)
//   z = mean(q - (w - e) / s)                      (the least-squares zero point)
// with q = round(w / s + z), beta growing by kappa each round, keeping the
// zero point whose dequantized group has the least mean absolute error.
// Two departures from the paper's code, both measured on gnubg's weights
// (magnitudes up to 500): the shrink works in grid steps (e / s), so that
// beta means the same at every weight scale (in raw units it shrinks
// nothing for large weights and everything for small ones); and the
// search starts from round to nearest's integer zero point, which keeps 0
// exactly representable (a range-fitted fractional zero doubled the error
// of layers whose weights are mostly near 0), so HQQ is never worse than
// RTN's grid by its own measure. The power in the shrink is taken in
// double precision so that the two backends agree after rounding to float.
// Pure functions, safe from any thread and any kernel.
#ifndef SOLVERD_KERNELS_QUANT_HQQ_MATH_H_
#define SOLVERD_KERNELS_QUANT_HQQ_MATH_H_

#include <math.h>

#include "common/host_device.h"
#include "quant/half.h"
#include "quant/quant_math.h"

namespace solverd::quant::internal {

inline constexpr float kHqqLp = 0.7f;     // the l_p "norm" of the error, p < 1
inline constexpr float kHqqBeta = 10.0f;  // the first penalty weight
inline constexpr float kHqqKappa = 1.01f;

// HQQ rounds w / s + z (z need not be an integer).
SOLVERD_HD inline int HqqCode(float w, const Grid& g) {
  return static_cast<int>(Clamp(rintf(w / g.scale + g.zero), 0, static_cast<float>(g.maxq)));
}

// sign(e) * max(|e| - |e|^(p - 1) / beta, 0).
SOLVERD_HD inline float ShrinkLp(float e, float beta) {
  const float a = fabsf(e);
  if (a == 0) return 0;
  const float penalty = static_cast<float>(pow(static_cast<double>(a), kHqqLp - 1.0)) / beta;
  const float shrunk = a - penalty;
  if (shrunk <= 0) return 0;
  return e < 0 ? -shrunk : shrunk;
}

SOLVERD_HD inline float HqqMeanAbsError(const float* w, int n, const Grid& g) {
  float sum = 0;
  for (int i = 0; i < n; ++i) sum += fabsf(w[i] - Dequantize(HqqCode(w[i], g), g));
  return sum / static_cast<float>(n);
}

// The grid of w[0..n): the range's scale (fp16) and the optimized zero
// point (fp16), starting from round to nearest's.
SOLVERD_HD inline Grid HqqGrid(const float* w, int n, int bits, int iterations) {
  float lo, hi;
  RangeOf(w, n, 1, &lo, &hi);
  Grid g = GridFor(lo, hi, bits, /*symmetric=*/false);
  Grid best = g;
  float best_error = HqqMeanAbsError(w, n, g);
  float beta = kHqqBeta;
  for (int it = 0; it < iterations; ++it) {
    float sum = 0;
    for (int i = 0; i < n; ++i) {
      const float q = static_cast<float>(HqqCode(w[i], g));
      const float steps = ShrinkLp((w[i] - g.scale * (q - g.zero)) / g.scale, beta);
      sum += q - (w[i] - g.scale * steps) / g.scale;
    }
    g.zero = RoundToHalf(Clamp(sum / static_cast<float>(n), -kMaxHalfScale, kMaxHalfScale));
    beta *= kHqqKappa;
    const float error = HqqMeanAbsError(w, n, g);
    if (!(error < best_error)) break;
    best = g;
    best_error = error;
  }
  return best;
}

struct HqqGroup {
  int bits = 4;
  int iterations = 20;

  SOLVERD_HD Grid operator()(const float* w, int n, uint8_t* codes) const {
    const Grid g = HqqGrid(w, n, bits, iterations);
    for (int i = 0; i < n; ++i) codes[i] = static_cast<uint8_t>(HqqCode(w[i], g));
    return g;
  }
};

}  // namespace solverd::quant::internal

#endif  // SOLVERD_KERNELS_QUANT_HQQ_MATH_H_
