// GPTQ's per-element error feedback, shared by the CPU backend and the
// CUDA kernel so both round the same way: after column j of a row is
// rounded, every later column k of that row moves by -err * U[j][k],
// where err = (w_j - q_j) / U[j][j] (no fused multiply-add).
#ifndef SOLVERD_KERNELS_QUANT_GPTQ_MATH_H_
#define SOLVERD_KERNELS_QUANT_GPTQ_MATH_H_

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

}  // namespace solverd::quant::internal

#endif  // SOLVERD_KERNELS_QUANT_GPTQ_MATH_H_
