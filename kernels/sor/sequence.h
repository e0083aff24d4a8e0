// SolveTuned: one system of a sequence, solved with the omega a Tuner picks
// and fed back to it; the loop body shared by the server and the benchmark.
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

}  // namespace solverd::sor

#endif  // SOLVERD_KERNELS_SOR_SEQUENCE_H_
