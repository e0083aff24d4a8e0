// Entropic optimal transport: the problem, options and result types and the
// host API shared by the CPU and CUDA backends.
//
//   minimise <C,P> + (1/eta) sum_ij P_ij log P_ij   s.t.  P 1 = a,  P^T 1 = b
//
// The dual potentials (x, y) parametrise P_ij = exp(eta (x_i + y_j - C_ij) - 1),
// the form used by Sinkhorn-Newton-Sparse (Tang et al., ICLR 2024), so that a
// Newton stage can later start from the Sinkhorn potentials unchanged.
// All types are plain values; Solve() is thread-compatible (independent calls
// may run concurrently on different streams).
#ifndef SOLVERD_KERNELS_OT_OT_H_
#define SOLVERD_KERNELS_OT_OT_H_

#include <cstdint>
#include <vector>

#include "common/cancel_token.h"
#include "common/device.h"
#include "common/progress.h"
#include "common/status.h"

namespace solverd::ot {

// Either a dense cost matrix or two point clouds with cost ||x_i - y_j||_p^p.
struct Problem {
  int64_t n = 0;             // rows (source points)
  int64_t m = 0;             // columns (target points)
  std::vector<double> cost;  // n*m row-major; empty when points are given
  int64_t dim = 0;           // point dimension; 0 when cost is given
  std::vector<double> x_points;  // n*dim row-major
  std::vector<double> y_points;  // m*dim row-major
  int cost_power = 2;            // p in ||x - y||_p^p: 1 or 2
  std::vector<double> a;  // source marginal, size n, non-negative
  std::vector<double> b;  // target marginal, size m, same mass as a
  double eta = 0;         // inverse regularisation (eta = 1/reg), > 0

  bool has_points() const { return dim > 0; }
};

enum class Method {
  kSinkhorn,  // log-domain Sinkhorn, over-relaxed (Options::overrelaxation)
  kSns,       // Sinkhorn-Newton-Sparse: sns_sinkhorn_steps Sinkhorn steps, then Newton
  kAuto,      // Sinkhorn, then Newton once that is predicted to finish sooner
};

struct Options {
  Method method = Method::kAuto;
  double tolerance = 1e-6;        // on ||P1 - a||_1 + ||P^T 1 - b||_1
  int64_t max_iterations = 10000;
  int check_every = 10;           // iterations between error checks / progress
  double time_limit_seconds = 0;  // 0: none
  int threads = 1;                // CPU backend threads
  bool want_plan = false;         // fill Result::plan (dense n*m)
  // When > 0, fill Result::sparse_plan with the entries P_ij >= this.
  double sparse_plan_threshold = 0;
  // Over-relaxation omega of the Sinkhorn iterations (all methods):
  // 0 tunes it from their convergence rate (overrelaxation.h), 1 is
  // classic Sinkhorn, and a value in (1, 1.95] is used throughout.
  double overrelaxation = 0;
  // SNS: Sinkhorn steps before the Newton stage (kSns only).
  int64_t sns_sinkhorn_steps = 20;
  // SNS: the sparse Hessian keeps about sparsity * n * m entries of P
  // (besides its exact diagonal); 0 means 10 / n, about ten per row.
  double sparsity = 0;
  // SNS: conjugate-gradient iterations per Newton step, at most.
  int cg_max_iterations = 500;
};

enum class Termination { kConverged, kMaxIterations, kTimeLimit, kStopped };

// Entries of the plan in coordinate form, sorted by row, then column.
struct SparsePlan {
  std::vector<int64_t> rows, cols;
  std::vector<double> values;
};

// A sparse plan larger than this is refused (RESOURCE_EXHAUSTED): the
// threshold was too low for the answer to fit a reply.
inline constexpr int64_t kMaxSparsePlanEntries = int64_t{1} << 20;

struct Result {
  double transport_cost = 0;      // <C,P>
  double entropic_objective = 0;  // <C,P> + (1/eta) sum P log P
  double marginal_error = 0;      // at the returned potentials
  int64_t iterations = 0;          // all stages
  int64_t sinkhorn_iterations = 0;
  int64_t newton_iterations = 0;
  // Wall time in each stage (Newton's own, without the Sinkhorn windows it
  // falls back to); 0 in a batched solve, which times the batch only.
  double sinkhorn_seconds = 0;
  double newton_seconds = 0;
  double cg_seconds = 0;  // the part of newton_seconds spent solving Newton systems
  std::vector<double> x, y;       // dual potentials (x_i = -inf where a_i = 0)
  std::vector<double> plan;       // n*m when Options::want_plan
  SparsePlan sparse_plan;         // when Options::sparse_plan_threshold > 0
  Termination termination = Termination::kMaxIterations;
};

// Checks sizes, finiteness, non-negativity and equal mass; the message of a
// failure names the field ("a", "cost", "eta", ...).
Status ValidateProblem(const Problem& problem);
Status ValidateOptions(const Options& options);

// Working memory Solve() needs on `device`, for admission control.
int64_t EstimateBytes(const Problem& problem, const Options& options);

// Solves `problem` on `device`, launching on `stream` for CUDA (ignored on
// the CPU). REQUIRES: ValidateProblem(problem).ok().
// Progress goes to `sink` every check_every iterations (sink may be null).
// When `cancel` stops the solve, the return is kCancelled/kDeadlineExceeded
// and *result still holds the last iterate with its figures.
Status Solve(const Device& device, StreamHandle stream, const Problem& problem,
             const Options& options, ProgressSink* sink,
             const CancelToken* cancel, Result* result);

}  // namespace solverd::ot

#endif  // SOLVERD_KERNELS_OT_OT_H_
