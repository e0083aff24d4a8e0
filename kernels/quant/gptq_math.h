// GPTQ's per-element error feedback, shared by the CPU backend and the
// CUDA kernel so both round the same way: after column j of a row is
// rounded, every later column k of that row moves by -err * U[j][k],
// where err = (w_j - q_j) / U[j][j] (no fused multiply-add).
// Pure functions, safe from any thread and any kernel.
#ifndef SOLVERD_KERNELS_QUANT_GPTQ_MATH_H_
#define SOLVERD_KERNELS_QUANT_GPTQ_MATH_H_

#include <cstdint>

#include "common/host_device.h"

namespace solverd::quant::internal {

SOLVERD_HD inline float FeedbackError(float w, float q, float u_jj) { return (w - q) / u_jj; }

SOLVERD_HD inline float Feedback(float w, float err, float u_jk) {
#ifdef __CUDA_ARCH__
  return __fsub_rn(w, __fmul_rn(err, u_jk));
#else
  return w - err * u_jk;  // built with -ffp-contract=off
#endif
}

// sum_t xa[t * stride] * xb[t * stride] in float64, in order, each
// product rounded before it is added: one entry of X^T X, computed alike by
// the CPU (on a transposed copy) and the CUDA kernel (on X itself).
template <typename T>
SOLVERD_HD inline double HessianDot(const T* xa, const T* xb, int64_t n, int64_t stride) {
  double s = 0;
  for (int64_t t = 0; t < n; ++t) {
    const double a = xa[t * stride], b = xb[t * stride];
#ifdef __CUDA_ARCH__
    s = __dadd_rn(s, __dmul_rn(a, b));
#else
    s = s + a * b;  // gptq_hessian.cc is built with -ffp-contract=off
#endif
  }
  return s;
}

}  // namespace solverd::quant::internal

#endif  // SOLVERD_KERNELS_QUANT_GPTQ_MATH_H_
