// DmmvBackend: the residual bookkeeping and move scoring the DMMV driver is
// written in, once per device (dmmv_cpu.cc, dmmv_cuda.cu), so the search
// logic exists once. A backend holds X (as columns) and, per instance of
// the batch, its weights and signed residual D = X v - b.
// Not thread-safe.
#ifndef SOLVERD_KERNELS_DMMV_DMMV_BACKEND_H_
#define SOLVERD_KERNELS_DMMV_DMMV_BACKEND_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "dmmv/dmmv.h"

namespace solverd::dmmv::internal {

// Moving variable var1 by delta1 (a change of value, not of level index)
// and, when var2 >= 0, var2 by delta2.
struct Move {
  int32_t instance = 0;
  int32_t var1 = 0;
  int32_t var2 = -1;
  double delta1 = 0;
  double delta2 = 0;
};

struct MoveScore {
  double max_violation = 0;  // max_k w_k |D_k + change_k|
  double sum_squares = 0;    // sum_k (w_k (D_k + change_k))^2
};

class DmmvBackend {
 public:
  virtual ~DmmvBackend() = default;
  // D = X values[i] - b for every instance i, from scratch (values: one
  // vector of M per instance; a backend may read X once for several).
  virtual Status SetValues(const std::vector<std::vector<double>>& values) = 0;
  virtual Status Residual(int instance, std::vector<double>* d) = 0;
  // Scores every move against its instance's current D. A move whose
  // max_violation exceeds cutoff[instance] may be reported with any value
  // above the cutoff (and any sum_squares): only moves at or below it are
  // scored exactly.
  virtual Status Score(const std::vector<Move>& moves, const std::vector<double>& cutoff,
                       std::vector<MoveScore>* scores) = 0;
  // Applies moves in order (an instance may appear more than once).
  virtual Status Apply(const std::vector<Move>& moves) = 0;
};

// `moves` regrouped into segments of one instance each, [first[s],
// first[s+1]), keeping their order within an instance: what a backend that
// applies each instance's moves in one thread needs.
void GroupByInstance(const std::vector<Move>& moves, std::vector<Move>* sorted,
                     std::vector<int32_t>* first);

struct CscMatrix;  // dmmv_sparse.h

// `problem` must be valid; weights of instance i are problem.instances[i]'s.
// The sparse backends take X's columns too (ToColumns(problem)), which must
// outlive them.
std::unique_ptr<DmmvBackend> MakeCpuBackend(const Problem& problem, int threads);
std::unique_ptr<DmmvBackend> MakeSparseCpuBackend(const Problem& problem,
                                                  const CscMatrix& columns, int threads);
#ifdef SOLVERD_HAVE_CUDA
Status MakeCudaBackend(const Device& device, StreamHandle stream, const Problem& problem,
                       std::unique_ptr<DmmvBackend>* backend);
Status MakeSparseCudaBackend(const Device& device, StreamHandle stream, const Problem& problem,
                             const CscMatrix& columns, std::unique_ptr<DmmvBackend>* backend);
#endif

// The search itself, on all instances in lockstep. With a sparse X
// (`columns` set), each local-search round applies every improving move
// whose rows no better move of its instance touches, not just the best:
// moves on disjoint rows add up, so together they still improve.
Status RunSearch(DmmvBackend& backend, const Problem& problem, const CscMatrix* columns,
                 const Options& options, ProgressSink* sink, const CancelToken* cancel,
                 Result* result);

}  // namespace solverd::dmmv::internal

#endif  // SOLVERD_KERNELS_DMMV_DMMV_BACKEND_H_
