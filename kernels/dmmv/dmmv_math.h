// Per-element DMMV math shared by the CPU backend and the CUDA kernels, so
// both compute residuals bit for bit alike: products and sums are rounded
// separately (no fused multiply-add), in the same order.
// Pure functions, safe from any thread and any kernel.
#ifndef SOLVERD_KERNELS_DMMV_DMMV_MATH_H_
#define SOLVERD_KERNELS_DMMV_DMMV_MATH_H_

#include "common/host_device.h"

namespace solverd::dmmv::internal {

// c + a * b, rounded after the product and after the sum.
SOLVERD_HD inline double MulAdd(double a, double b, double c) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(__dmul_rn(a, b), c);
#else
  return a * b + c;  // dmmv_cpu.cc is built with -ffp-contract=off
#endif
}

// Row k's residual after a move of up to two variables: d + d1 x1 + d2 x2
// (a single move has d2 = 0, x2 = 0, which leaves the sum exact).
SOLVERD_HD inline double MovedResidual(double d, double x1, double d1, double x2, double d2) {
  return MulAdd(d2, x2, MulAdd(d1, x1, d));
}

SOLVERD_HD inline double Abs(double v) { return v < 0 ? -v : v; }

}  // namespace solverd::dmmv::internal

#endif  // SOLVERD_KERNELS_DMMV_DMMV_MATH_H_
