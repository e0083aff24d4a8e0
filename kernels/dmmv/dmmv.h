// Discrete Min-Max Violation (DMMV): choose for each variable j a level
// v_j from its finite level set so that the largest weighted violation
//   t = max_k w_k |(X v - b)_k|
// is smallest (Ahmed, Mostajabdaveh, Aref, Zhou, 2025). X is N x M, dense
// row-major or sparse (CSR), shared by every instance of a batch; each instance has its own
// b, weights and level sets (the quantization case: one instance per output
// row of a layer, X the calibration inputs).
//
// The solver is a heuristic: local search over single-level moves and
// level-preserving pairs, scored exactly (ties broken by the L2 norm of
// the weighted residual), inside an adaptive large-neighbourhood search
// (random and worst-row-guided destroy, random and greedy repair,
// roulette-wheel operator weights, hill-climbing acceptance). Deterministic
// given the seed. Solve() is thread-compatible.
#ifndef SOLVERD_KERNELS_DMMV_DMMV_H_
#define SOLVERD_KERNELS_DMMV_DMMV_H_

#include <cstdint>
#include <vector>

#include "common/cancel_token.h"
#include "common/device.h"
#include "common/progress.h"
#include "common/status.h"

namespace solverd::dmmv {

// The levels a variable may take, sorted ascending: a uniform grid
// lo + step * q for q = 0..count-1, or an explicit list.
struct Levels {
  double lo = 0, step = 1;
  int64_t count = 0;            // uniform grid when `values` is empty
  std::vector<double> values;   // explicit, strictly increasing

  int64_t size() const { return values.empty() ? count : static_cast<int64_t>(values.size()); }
  double Value(int64_t q) const { return values.empty() ? lo + step * q : values[q]; }
  // The index of the level nearest to `x` (ties go down).
  int64_t Nearest(double x) const;
};

struct Instance {
  std::vector<double> b;        // N
  std::vector<double> weights;  // N, positive; empty: all 1
  // One Levels for every variable, or M of them (one per variable).
  std::vector<Levels> levels;
  // Starting point: level indices (M), or a continuous x (M) to round to
  // the nearest levels; neither: round the least-squares-free guess 0.
  std::vector<int64_t> start_levels;
  std::vector<double> start_values;
};

// A sparse X: row k's entries are values[row_offsets[k] .. row_offsets[k+1])
// at columns[...], columns strictly increasing within a row.
struct CsrMatrix {
  std::vector<int64_t> row_offsets;  // N + 1
  std::vector<int32_t> columns;
  std::vector<double> values;
};

struct Problem {
  int64_t rows = 0, cols = 0;  // N, M
  std::vector<double> x;       // N x M row-major; empty when x_csr is set
  CsrMatrix x_csr;             // set (row_offsets non-empty): X is sparse
  std::vector<Instance> instances;

  bool sparse() const { return !x_csr.row_offsets.empty(); }
};

struct Options {
  int64_t max_outer_iterations = 200;  // LNS rounds; 0: local search only
  double time_limit_seconds = 0;       // 0: none; reaching it ends the search normally
  int64_t destroy_size = 0;            // variables per destroy; 0: max(2, M / 10)
  // The search ends once every instance has gone this many LNS rounds
  // without a better (t, L2); 0: never (the budgets alone end it).
  int64_t stall_rounds = 0;
  int pair_candidates = 16;            // best single moves combined into pairs
  uint64_t seed = 1;
  int threads = 1;                     // CPU backend
  int progress_every = 1;              // LNS rounds between progress reports
  // Minimize the weighted sum of squares ||w .* (X v - b)||^2 alone: t is
  // reported but no longer comes first. For regularized fits whose rows are
  // not all constraints (tomography under stated noise, whose smoothness
  // rows would otherwise decide t).
  bool least_squares = false;
  // The objective is the largest t over all instances, not each one's own
  // (a quantized layer's max violation): only the instances within 2% of
  // the current largest are searched, so the others keep their start
  // unless the largest comes down to them.
  bool max_over_instances = false;
  // > 0: t counts only above this cap, so among assignments within it the
  // smallest L2 wins (a polish after a min-max search, with the cap at the
  // t it reached).
  double violation_cap = 0;
};

struct InstanceResult {
  std::vector<int64_t> level_indices;  // M
  std::vector<double> values;          // M, the chosen levels
  double max_violation = 0;            // t (also with least_squares)
  double l2 = 0;                       // ||w .* (X v - b)||_2
  double start_max_violation = 0;      // t of the starting point
  int64_t moves = 0;                   // improving moves applied
  int64_t outer_iterations = 0;
};

struct Result {
  std::vector<InstanceResult> instances;
  double seconds = 0;
};

// INVALID_ARGUMENT naming the field (shapes, finiteness, malformed CSR,
// empty or unsorted level sets, non-positive weights, start points out of range).
Status ValidateProblem(const Problem& problem);

// Solves every instance. A cancel, or the token's deadline, returns the
// best found so far with CANCELLED / DEADLINE_EXCEEDED.
Status Solve(const Device& device, StreamHandle stream, const Problem& problem,
             const Options& options, ProgressSink* sink, const CancelToken* cancel,
             Result* result);

// Working memory Solve() needs on `device`, for admission control.
int64_t MemoryBytes(const Problem& problem);

}  // namespace solverd::dmmv

#endif  // SOLVERD_KERNELS_DMMV_DMMV_H_
