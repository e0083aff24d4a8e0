// The steps of SNS's conjugate gradient on the Newton system's Schur
// complement S = diag(dc) - Ps^T diag(inv_dr) Ps (see sns_driver.cc),
// shared by the host loop (schur_cg.cc) and the device loop (ot_cuda.cu)
// so that both take the same steps and stop at the same point.
// Pure functions and a plain struct, safe from any thread and any kernel.
#ifndef SOLVERD_KERNELS_OT_SCHUR_CG_MATH_H_
#define SOLVERD_KERNELS_OT_SCHUR_CG_MATH_H_

#include <cmath>

#include "common/host_device.h"

namespace solverd::ot::internal {

// The scalars of one solve. The device keeps them in device memory, where
// every kernel of an iteration reads `done` first: the host can queue many
// iterations and look at the state only now and then.
struct CgScalars {
  double rz = 0;         // r . z of the current residual r and z = M^-1 r
  double rr = 0;         // r . r
  double curvature = 0;  // d . S d for this iteration's direction d
  double alpha = 0;      // the step along d
  double rz_next = 0;    // r . z and r . r after the step
  double rr_next = 0;
  double beta = 0;       // the last direction's weight in the next one
  double target = 0;     // the residual norm to reach: a share of the first
  long long iterations = 0;
  int done = 0;
};

// (S v)_j from v_j and back_j = (Ps^T diag(inv_dr) Ps v)_j: 0 on the
// columns left out of the system (zero mass, the fixed one).
SOLVERD_HD inline double SchurEntry(double active, double dc, double v, double back) {
  return active != 0 ? dc * v - back : 0.0;
}

// Sets the target from the first residual (rr of the right-hand side).
SOLVERD_HD inline void CgSetTarget(double relative_target, CgScalars* s) {
  s->target = relative_target * sqrt(s->rr);
}

// Whether the solve goes on: its residual still above target.
SOLVERD_HD inline bool CgContinues(const CgScalars& s, long long max_iterations) {
  return s.iterations < max_iterations && sqrt(s.rr) > s.target;
}

// The step length from rz and the curvature; false when S is not positive
// along the direction (rounding at a nearly singular S), which ends the
// solve where it is.
SOLVERD_HD inline bool CgStepLength(CgScalars* s) {
  if (!(s->curvature > 0)) return false;
  s->alpha = s->rz / s->curvature;
  return true;
}

// One entry's share of the step: x += alpha d, r -= alpha S d.
SOLVERD_HD inline void CgStepEntry(double alpha, double dir, double schur_dir, double* x,
                                   double* res) {
  *x += alpha * dir;
  *res -= alpha * schur_dir;
}

// Entry t of the coarse correction inverse R r (inverse size x size,
// row-major; coarse_res = R r).
SOLVERD_HD inline double CoarseEntry(const double* inverse, const double* coarse_res, int size,
                                     int t) {
  const double* row = inverse + static_cast<long>(t) * size;
  double sum = 0;
  for (int u = 0; u < size; ++u) sum += row[u] * coarse_res[u];
  return sum;
}

// z_j = (M^-1 r)_j for the two-level preconditioner: the Jacobi term and
// the coarse correction e[aggregate_j] (0 outside every aggregate).
SOLVERD_HD inline double PreconditionEntry(double inv_diag, double res, int aggregate,
                                           const double* coarse) {
  return inv_diag * res + (aggregate >= 0 ? coarse[aggregate] : 0.0);
}

// After the step: the next direction's weight, and the step counted.
SOLVERD_HD inline void CgFinishStep(CgScalars* s) {
  s->beta = s->rz_next / s->rz;
  s->rz = s->rz_next;
  s->rr = s->rr_next;
  ++s->iterations;
}

}  // namespace solverd::ot::internal

#endif  // SOLVERD_KERNELS_OT_SCHUR_CG_MATH_H_
