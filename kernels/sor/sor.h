// SOR-family linear solvers: SOR, SSOR, and (SSOR-preconditioned) conjugate
// gradient for A x = b with sparse A, on the CPU or a CUDA device.
//
// The relaxation parameter omega is an input here; choosing it across a
// sequence of systems is the tuners' job (sor/tuner.h). Iterations count
// sweeps (SOR), forward+backward sweep pairs (SSOR) or CG steps, and the
// solve stops when ||b - A x||_2 <= tolerance * ||b||_2. Solve() is
// thread-compatible: independent calls may run concurrently.
#ifndef SOLVERD_KERNELS_SOR_SOR_H_
#define SOLVERD_KERNELS_SOR_SOR_H_

#include <cstdint>
#include <vector>

#include "common/cancel_token.h"
#include "common/device.h"
#include "common/progress.h"
#include "common/status.h"
#include "sor/csr.h"
#include "sor/ordering.h"

namespace solverd::sor {

enum class Method {
  kSor,     // forward sweeps
  kSsor,    // forward then backward sweep per iteration
  kSsorCg,  // CG preconditioned by one SSOR iteration; A symmetric positive definite
  kCg,      // plain CG (omega unused); A symmetric positive definite
};

enum class Ordering {
  kMulticolor,  // parallel on CPU threads and the GPU
  kNatural,     // exact sequential SOR; CPU only
};

struct Options {
  Method method = Method::kSor;
  Ordering ordering = Ordering::kMulticolor;
  double omega = 1.0;          // in (0, 2)
  double tolerance = 1e-8;     // relative residual
  int64_t max_iterations = 10000;
  double time_limit_seconds = 0;  // 0: none
  int threads = 1;                // CPU backend threads
  int progress_every = 10;        // iterations between progress reports
};

struct Result {
  std::vector<double> x;
  int64_t iterations = 0;
  double relative_residual = 0;
  bool converged = false;
  double seconds = 0;
};

// Checks `options` against `a` (omega range, ordering on the device, CG's
// need for symmetry). INVALID_ARGUMENT names the option.
Status ValidateOptions(const Device& device, const CsrMatrix& a, const Options& options);

// Solves A x = b starting from `x0` (empty: zeros). `order` must have been
// built for A's pattern and agree with options.ordering. A solve that hits
// max_iterations or diverges returns OK with converged = false; a cancelled
// one returns CANCELLED with the iterate so far in `result`.
Status Solve(const Device& device, StreamHandle stream, const CsrMatrix& a,
             const SweepOrder& order, const std::vector<double>& b,
             const std::vector<double>& x0, const Options& options, ProgressSink* sink,
             const CancelToken* cancel, Result* result);

// One system of a batch. The batch shares A's sparsity pattern; b, x0
// (empty: zeros) and omega are its own.
struct BatchSystem {
  const CsrMatrix* a = nullptr;
  const std::vector<double>* b = nullptr;
  const std::vector<double>* x0 = nullptr;
  double omega = 1.0;
};

// Systems one batched launch serves.
constexpr int kMaxBatch = 64;

// Solves up to kMaxBatch systems with one pattern together: each sweep,
// SpMV or vector operation is one launch over the whole batch, so many
// small systems fill a GPU that one would leave idle. Each system stops on
// its own (converged, diverged, max_iterations) and gets its own result and
// status (statuses[s]: e.g. INVALID_ARGUMENT when CG finds system s not
// positive definite); result seconds are the batch's. Options.omega is
// unused (each system has its own). The returned status is the batch's:
// invalid input, CANCELLED (iterates so far in `results`), device errors.
Status SolveBatch(const Device& device, StreamHandle stream,
                  const std::vector<BatchSystem>& systems, const SweepOrder& order,
                  const Options& options, ProgressSink* sink, const CancelToken* cancel,
                  std::vector<Result>* results, std::vector<Status>* statuses);

// Device memory a solve of `batch` systems like A needs, for admission control.
int64_t EstimateBytes(const CsrMatrix& a, int batch = 1);

}  // namespace solverd::sor

#endif  // SOLVERD_KERNELS_SOR_SOR_H_
