// The coarse level of SNS's two-level preconditioner for the Schur system
// S = diag(dc) - Ps^T diag(inv_dr) Ps (ot_backend.h). Jacobi alone leaves
// the smooth errors: on a point cloud's plan S is close to a graph
// Laplacian whose low modes vary slowly over many columns, and CG took
// about 20 steps to a residual of 1e-2 whatever the forcing term. The
// coarse level corrects those on aggregates of columns: z = diag(S)^-1 r +
// R^T (R S R^T)^-1 R r, R the aggregates' 0/1 indicator rows.
//
// Aggregates come from the plan alone, so that any cost (not only points)
// gets them: kCoarseSeeds rows spread over the row indices are seeds, and
// a column joins the seed whose entry in it ranks highest (P_sj /
// sqrt(r_s)), the seed nearest it where the plan is a blurred map. Seeds
// chosen by farthest point (an argmin over the columns per seed) took
// about the same CG steps in a numpy model on bench/ot's cases and would
// need single rows of the device's plan.
// Thread-compatible: a CoarseSpaceBuilder serves one solve at a time (it
// keeps its work arrays between Newton steps); the backend it is given is
// the caller's, not shared.
#ifndef SOLVERD_KERNELS_OT_COARSE_SPACE_H_
#define SOLVERD_KERNELS_OT_COARSE_SPACE_H_

#include "common/status.h"
#include "ot/ot_backend.h"

namespace solverd::ot::internal {

class CoarseSpaceBuilder {
 public:
  // Sets system->coarse for the backend's sparse plan of `kept` entries
  // and the system's inv_dr, dc and active; leaves it empty (Jacobi
  // alone) where the plan is too sparse or the system too small to gain
  // from it, or R S R^T is not numerically positive definite.
  Status Build(OtBackend& backend, int64_t kept, SchurSystem* system);

  // Build() in two halves, for callers that get the group sums Ps R^T in
  // a pass of their own (OtBackend::SparseSchurSetup()). The first sets
  // system->coarse's aggregates from inv_dr and active (a pass over the
  // seed rows) and *size to their number, 0 where no coarse level is due;
  // the second, once row_sums() holds the group sums over them and dc is
  // set, the coarse matrix's inverse.
  Status Aggregate(OtBackend& backend, int64_t kept, SchurSystem* system, int* size);
  std::vector<double>* row_sums() { return &q_; }
  void Finish(int size, SchurSystem* system);

 private:
  // Q = Ps R^T, kept from step to step: allocated afresh, its pages cost
  // a fault each on first touch (on the dev VM 1.4 ms a Newton step at
  // n = 2000, where the whole level then took 1.8).
  std::vector<double> q_;
};

}  // namespace solverd::ot::internal

#endif  // SOLVERD_KERNELS_OT_COARSE_SPACE_H_
