// SolveTuned: one system of a sequence, solved with the omega a Tuner picks
// and fed back to it; the loop body shared by the server and the benchmark.
// Thread-safe as the Tuner it is given is (Tuner locks itself).
#ifndef SOLVERD_KERNELS_SOR_SEQUENCE_H_
#define SOLVERD_KERNELS_SOR_SEQUENCE_H_

#include <cstdint>
#include <vector>

#include "sor/sor.h"
#include "sor/tuner.h"

namespace solverd::sor {

struct TunedSolve {
  int arm = 0;
  double omega = 0;
  Result result;                 // of the omega used (the best, for kGridOracle)
  int64_t work_iterations = 0;   // summed over every omega tried
};

// Solves with `options` but the tuner's omega. A grid-oracle tuner solves
// once per grid omega and keeps the fastest. Only completed solves are fed
// back: a cancelled one teaches the tuner nothing.
Status SolveTuned(Tuner& tuner, const Device& device, StreamHandle stream, const CsrMatrix& a,
                  const SweepOrder& order, const std::vector<double>& b,
                  const std::vector<double>& x0, double context, const Options& options,
                  ProgressSink* sink, const CancelToken* cancel, TunedSolve* out);

// One system of a batch handed to SolveTunedBatch; x0 empty: zeros.
struct SequenceSystem {
  const CsrMatrix* a = nullptr;
  const std::vector<double>* b = nullptr;
  const std::vector<double>* x0 = nullptr;
  double context = 0;
};

// Up to kMaxBatch systems of one pattern solved together (SolveBatch), each
// with the omega `tuner` chooses for it, or options.omega when `tuner` is
// null. Only for tuners that choose ahead (Tuner::chooses_ahead): a learning
// tuner must see each result before it picks the next omega (SolveTuned).
// statuses[k] is system k's own outcome; only its successes are fed back.
Status SolveTunedBatch(Tuner* tuner, const Device& device, StreamHandle stream,
                       const std::vector<SequenceSystem>& systems, const SweepOrder& order,
                       const Options& options, ProgressSink* sink, const CancelToken* cancel,
                       std::vector<TunedSolve>* out, std::vector<Status>* statuses);

}  // namespace solverd::sor

#endif  // SOLVERD_KERNELS_SOR_SEQUENCE_H_
