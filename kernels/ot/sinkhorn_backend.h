// SinkhornBackend: the device-specific passes of log-domain Sinkhorn.
//
// The iteration logic (convergence checks, progress, cancellation, limits)
// lives once in RunSinkhorn(); each backend only implements these passes
// over its own copy of C and the potentials. Not thread-safe: one solve
// owns one backend.
#ifndef SOLVERD_KERNELS_OT_SINKHORN_BACKEND_H_
#define SOLVERD_KERNELS_OT_SINKHORN_BACKEND_H_

#include <vector>

#include "common/cancel_token.h"
#include "common/progress.h"
#include "common/status.h"
#include "ot/ot.h"

namespace solverd::ot::internal {

class SinkhornBackend {
 public:
  virtual ~SinkhornBackend() = default;

  // Computes lse_i = log sum_j exp(eta (y_j - C_ij)) for every row and keeps
  // it for UpdateRows(). When row_error is non-null, also returns
  // ||P1 - a||_1 at the current potentials (columns are exact after
  // UpdateColumns(), so this is the whole marginal error then).
  virtual Status RowPass(double* row_error) = 0;
  // x_i <- BalancedPotential(a_i, lse_i). REQUIRES: RowPass() since the last
  // change of y.
  virtual Status UpdateRows() = 0;
  // y_j <- BalancedPotential(b_j, log sum_i exp(eta (x_i - C_ij))).
  virtual Status UpdateColumns() = 0;
  // <C,P> and sum P log P at the current potentials.
  virtual Status PlanTotals(double* transport_cost, double* plogp) = 0;
  virtual Status CopyPotentials(std::vector<double>* x, std::vector<double>* y) = 0;
  virtual Status CopyPlan(std::vector<double>* plan) = 0;
};

// Runs Sinkhorn iterations on `backend` until converged, out of iterations
// or time, or stopped by `cancel`; fills *result (see Solve() in ot.h).
Status RunSinkhorn(SinkhornBackend& backend, const Problem& problem,
                   const Options& options, ProgressSink* sink,
                   const CancelToken* cancel, Result* result);

#ifdef SOLVERD_HAVE_CUDA
Status SolveSinkhornCuda(const Device& device, StreamHandle stream,
                         const Problem& problem, const Options& options,
                         ProgressSink* sink, const CancelToken* cancel,
                         Result* result);
#endif
Status SolveSinkhornCpu(const Problem& problem, const Options& options,
                        ProgressSink* sink, const CancelToken* cancel,
                        Result* result);

}  // namespace solverd::ot::internal

#endif  // SOLVERD_KERNELS_OT_SINKHORN_BACKEND_H_
