// SolveBatch: many small ot problems solved together.
//
// On CUDA, the Sinkhorn iterations of all problems of one shape run as one
// launch per pass over the whole stack (the problem in the grid), which is
// what makes problems of a few thousand entries worth a GPU: alone, each
// pass is a handful of tiny launches. Each problem keeps its own options,
// stopping test, progress, cancellation and result, and gets the iterates
// it would get alone on CUDA. SNS problems, and `auto` ones that move on to
// Newton, run their Sinkhorn stage in the batch and their Newton stage
// alone from the potentials it reached. Sparse plans and problems of
// another shape run alone, through Solve(). On the CPU every problem runs
// through Solve().
// SolveBatch may run on many threads at once, each with its own items
// and stream; the items of one call belong to that call alone.
#ifndef SOLVERD_KERNELS_OT_BATCH_H_
#define SOLVERD_KERNELS_OT_BATCH_H_

#include <vector>

#include "common/cancel_token.h"
#include "common/device.h"
#include "common/progress.h"
#include "common/status.h"
#include "ot/ot.h"

namespace solverd::ot {

struct BatchItem {
  const Problem* problem = nullptr;  // REQUIRES: ValidateProblem(*problem).ok()
  Options options;
  ProgressSink* sink = nullptr;        // may be null
  const CancelToken* cancel = nullptr;  // may be null
  Result result;   // written by SolveBatch, as Solve() writes it
  Status status;   // what Solve() would return for this problem
  bool batched = false;  // whether it ran in a batched launch
};

// Solves every item on `device` (on `stream` for CUDA). Returns OK unless
// the device itself failed; each item's outcome is in its status.
Status SolveBatch(const Device& device, StreamHandle stream, std::vector<BatchItem>* items);

}  // namespace solverd::ot

#endif  // SOLVERD_KERNELS_OT_BATCH_H_
