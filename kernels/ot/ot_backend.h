// OtBackend: the device-specific passes of the ot solvers.
//
// The iteration logic (convergence checks, progress, cancellation, limits,
// the Newton system) lives once in the drivers, RunSinkhorn() and RunSns();
// each backend implements only the passes over its own copy of C and the
// potentials: O(n m) work, or O(nnz) for the sparse plan. Vectors of size n
// or m cross the interface as host vectors; the one loop a backend may run
// itself is the Newton system's conjugate gradient (SolveSchur), whose
// steps are each too small to pay for a round trip to a device.
// Not thread-safe: one solve owns one backend.
#ifndef SOLVERD_KERNELS_OT_OT_BACKEND_H_
#define SOLVERD_KERNELS_OT_OT_BACKEND_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/cancel_token.h"
#include "common/progress.h"
#include "common/status.h"
#include "ot/ot.h"
#include "ot/sinkhorn_math.h"

namespace solverd::ot {
struct BatchItem;  // batch.h
}  // namespace solverd::ot

namespace solverd::ot::internal {

// S dy = rhs for S = diag(dc) - Ps^T diag(inv_dr) Ps on the active
// columns, Ps the backend's sparse plan: SNS's Newton system with the row
// unknowns eliminated (sns_driver.cc). Entries of rhs, inv_diag and dy are 0
// on inactive columns.
// The coarse level of the two-level preconditioner of SchurSystem
// (coarse_space.h): the columns in `size` disjoint aggregates, and the
// inverse of S restricted to them.
struct CoarseSpace {
  std::vector<int32_t> aggregate;  // m: a column's aggregate, -1 for none
  int size = 0;                    // aggregates; 0 for Jacobi alone
  std::vector<double> inverse;     // size x size, row-major: (R S R^T)^-1
};

struct SchurSystem {
  std::vector<double> inv_dr;    // n: 1 / (P1 + shift), 0 on zero-mass rows
  std::vector<double> dc;        // m: P^T 1 + shift
  std::vector<double> active;    // m: 1 on the columns solved for, else 0
  std::vector<double> rhs;       // m
  std::vector<double> inv_diag;  // m: 1 / diag(S), the preconditioner's first level
  CoarseSpace coarse;            // its second: z = inv_diag r + R^T inverse R r
  double relative_target = 0;    // stop once ||rhs - S dy||_2 <= this * ||rhs||_2
  int64_t max_iterations = 0;
};

// How SNS's sparsification ranks the entries of P: by EntryRank(log P_ij,
// row[i], col[j]) (sinkhorn_math.h), highest kept. sns_driver.cc sets the
// weights to half the log of each row's and column's sum, ranking entries as
// those of diag(P1)^-1/2 P diag(P^T 1)^-1/2; all zero ranks by P itself.
struct PlanRanking {
  std::vector<double> row;  // n
  std::vector<double> col;  // m
};

class OtBackend {
 public:
  virtual ~OtBackend() = default;

  // --- Sinkhorn ---

  // Measures every row of the plan (its sum, or equivalently
  // lse_i = log sum_j exp(eta (y_j - C_ij))) and keeps it for UpdateRows().
  // When row_error is non-null, also returns ||P1 - a||_1 at the current
  // potentials plus the column error the last UpdateColumns() left
  // (RelaxedMarginalError(); none after a plain step, nor counted after
  // SetPotentials()): the whole marginal error, once UpdateColumns() ran.
  virtual Status RowPass(double* row_error) = 0;
  // x_i <- RelaxedPotential(x_i, BalancedPotential(a_i, lse_i)).
  // REQUIRES: RowPass() since the last change of y.
  virtual Status UpdateRows(const Relaxation& relaxation) = 0;
  // y_j <- RelaxedPotential(y_j, BalancedPotential(b_j, log sum_i
  // exp(eta (x_i - C_ij)))), keeping the column error it leaves.
  virtual Status UpdateColumns(const Relaxation& relaxation) = 0;
  // One Sinkhorn iteration with the measurement before it: RowPass()'s
  // error at the current potentials goes to *row_error (which may be null
  // only when keep_below is -inf); then, unless it is <= keep_below, the
  // rows and columns are updated and *updated set. Backends that measure
  // the error for free in the same pass as the update override this.
  virtual Status SinkhornIteration(double keep_below, const Relaxation& relaxation,
                                   double* row_error, bool* updated) {
    SOLVERD_RETURN_IF_ERROR(RowPass(row_error));
    *updated = row_error == nullptr || !(*row_error <= keep_below);
    if (!*updated) return Status::Ok();
    SOLVERD_RETURN_IF_ERROR(UpdateRows(relaxation));
    return UpdateColumns(relaxation);
  }
  // <C,P> and sum P log P at the current potentials.
  virtual Status PlanTotals(double* transport_cost, double* plogp) = 0;
  virtual Status CopyPotentials(std::vector<double>* x, std::vector<double>* y) = 0;
  virtual Status CopyPlan(std::vector<double>* plan) = 0;
  // The entries P_ij >= threshold, in any order; RESOURCE_EXHAUSTED past
  // kMaxSparsePlanEntries.
  virtual Status CopySparsePlan(double threshold, SparsePlan* plan) = 0;

  // --- Newton stage of SNS ---
  virtual Status SetPotentials(const std::vector<double>& x, const std::vector<double>& y) = 0;
  // Row sums r = P1, column sums c = P^T 1 and sum P at the current
  // potentials, in one pass over C.
  virtual Status PlanMarginals(std::vector<double>* r, std::vector<double>* c,
                               double* total) = 0;
  // counts[k] = number of entries whose rank (see PlanRanking) is in bin k
  // of [lo, hi), and masses[k] their sum of P_ij (bins equal width; entries
  // below lo are not counted, above hi go in the last bin), for choosing
  // the sparsification threshold; over the rows i with i % row_stride == 0
  // alone (a sample, when row_stride > 1).
  virtual Status LogPlanHistogram(const PlanRanking& ranking, double lo, double hi,
                                  int64_t row_stride, std::vector<int64_t>* counts,
                                  std::vector<double>* masses) = 0;
  // Keeps the entries ranked at or above `threshold` as the sparse plan Ps
  // used by SparseMultiply(); returns how many were kept.
  virtual Status SparsifyPlan(const PlanRanking& ranking, double threshold, int64_t* kept) = 0;
  // Makes the sparse plan Ps all of P at the current potentials, its
  // products then exact, where this backend can do that at about the cost
  // of a sparse plan of the same entries (*used; unchanged otherwise).
  // As with a sparse plan, products are those of the plan at the potentials
  // of this call or the last RefreshSparsePlan(): callers set no others
  // in between.
  virtual Status UseWholePlan(bool* used) = 0;
  // Recomputes the sparse plan's entries at the current potentials, the
  // same entries kept; *kept_mass = their sum, unless kept_mass is null.
  // O(kept) work, no pass over C. REQUIRES: SparsifyPlan() or
  // UseWholePlan() before.
  virtual Status RefreshSparsePlan(double* kept_mass) = 0;
  // out = Ps in (in of size m, out of size n), or Ps^T in when transpose
  // (in of size n, out of size m).
  virtual Status SparseMultiply(bool transpose, const std::vector<double>& in,
                                std::vector<double>* out) = 0;
  // out_j = sum_i Ps_ij^2 w_i (size m): the diagonal of Ps^T diag(w) Ps.
  virtual Status SparseColumnSquares(const std::vector<double>& w, std::vector<double>* out) = 0;
  // out = Ps^T diag(w) Ps v (w of size n, v and out of m), and Ps v, the
  // product's halfway point, into *plan_v unless it is null: by default the
  // two products; a backend that can fuse them overrides it.
  virtual Status SparseGramTimes(const std::vector<double>& w, const std::vector<double>& v,
                                 std::vector<double>* out, std::vector<double>* plan_v);
  // For each column j, the row i with weight[i] > 0 whose kept entry
  // maximises Ps_ij * weight[i] (of equal ones the last row), or -1 when
  // no such row keeps an entry in column j (weight of size n, rows of m).
  virtual Status SparseHeaviestWeightedRows(const std::vector<double>& weight,
                                            std::vector<int32_t>* rows) = 0;
  // q[i * size + t] = sum of Ps_ij over the kept entries of row i whose
  // column's group[j] is t (group of size m, -1 in no group; q of n * size).
  virtual Status SparseGroupRowSums(const std::vector<int32_t>& group, int size,
                                    std::vector<double>* q) = 0;
  // The Newton system's setup: back = Ps^T w, squares = SparseColumnSquares
  // (square_weights) and, unless size is 0, q = SparseGroupRowSums(group,
  // size). By default the three calls; a backend that can share one pass
  // over the plan among them overrides it.
  virtual Status SparseSchurSetup(const std::vector<double>& w,
                                  const std::vector<double>& square_weights,
                                  const std::vector<int32_t>& group, int size,
                                  std::vector<double>* back, std::vector<double>* squares,
                                  std::vector<double>* q);
  // Solves the Newton system's Schur complement (see SchurSystem) by
  // preconditioned conjugate gradient from dy = 0; *iterations =
  // the CG iterations run, two sparse products each. Where the solver
  // tracks Ps dy along the way (sum of each step's Ps d), it leaves that
  // in *plan_dy, else empties it. This version runs the loop here over
  // SparseGramTimes() and tracks it (schur_cg.cc); a device backend
  // overrides it to keep the loop's vectors on the device.
  virtual Status SolveSchur(const SchurSystem& system, std::vector<double>* dy,
                            int64_t* iterations, std::vector<double>* plan_dy);
};

// Runs Sinkhorn iterations on `backend` until converged, out of iterations
// or time, or stopped by `cancel`; fills *result (see Solve() in ot.h).
Status RunSinkhorn(OtBackend& backend, const Problem& problem,
                   const Options& options, ProgressSink* sink,
                   const CancelToken* cancel, Result* result);

inline Status TooManyEntries(double threshold) {
  return ResourceExhausted("sparse_plan_threshold: more than " +
                           std::to_string(kMaxSparsePlanEntries) + " entries are >= " +
                           std::to_string(threshold) + "; raise the threshold");
}

// Sinkhorn-Newton-Sparse: Sinkhorn steps first (a fixed number, or until
// the error stalls for Method::kAuto), then sparse Newton steps with a
// conjugate-gradient solve and an Armijo line search on the dual.
Status RunSns(OtBackend& backend, const Problem& problem, const Options& options,
              ProgressSink* sink, const CancelToken* cancel, Result* result);

// Runs options.method on a backend of the given device.
#ifdef SOLVERD_HAVE_CUDA
// Runs the Sinkhorn stages of `group` (two or more items of one shape, no
// sparse plan) as batched launches, then the Newton stage of each item
// that has one (SNS, `auto` on a stall) alone from there; fills each
// item's result and status.
Status SinkhornBatchCuda(const Device& device, StreamHandle stream,
                         const std::vector<BatchItem*>& group);
Status SolveCuda(const Device& device, StreamHandle stream, const Problem& problem,
                 const Options& options, ProgressSink* sink, const CancelToken* cancel,
                 Result* result);
#endif
Status SolveCpu(const Problem& problem, const Options& options, ProgressSink* sink,
                const CancelToken* cancel, Result* result);

// The driver for options.method.
inline Status RunMethod(OtBackend& backend, const Problem& problem, const Options& options,
                        ProgressSink* sink, const CancelToken* cancel, Result* result) {
  if (options.method == Method::kSinkhorn) {
    return RunSinkhorn(backend, problem, options, sink, cancel, result);
  }
  return RunSns(backend, problem, options, sink, cancel, result);
}

}  // namespace solverd::ot::internal

#endif  // SOLVERD_KERNELS_OT_OT_BACKEND_H_
