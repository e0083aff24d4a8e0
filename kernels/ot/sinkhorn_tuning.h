// Launch parameters of the Sinkhorn kernels, kept apart from the math so
// they can be tuned per architecture in one place.
// constexpr values only, so thread-safe.
#ifndef SOLVERD_KERNELS_OT_SINKHORN_TUNING_H_
#define SOLVERD_KERNELS_OT_SINKHORN_TUNING_H_

namespace solverd::ot::internal {

struct SinkhornTuning {
  // One block reduces one row of C (row log-sum-exp, plan totals).
  static constexpr int kRowBlockThreads = 256;
  // The column pass: one thread per column, rows split into chunks of this
  // many so that small-m problems still fill the GPU.
  static constexpr int kColumnBlockThreads = 128;
  static constexpr int kColumnRowsPerChunk = 64;
  // Element-wise kernels (potential updates, cost from points, dense plan).
  static constexpr int kElementwiseThreads = 256;
  // Grid-stride passes over all n*m entries (histogram, sparsification).
  static constexpr unsigned kMaxEntryBlocks = 4096;
  // Bins of the log P histogram that picks the sparsification threshold.
  static constexpr int kHistogramBins = 2048;
};

}  // namespace solverd::ot::internal

#endif  // SOLVERD_KERNELS_OT_SINKHORN_TUNING_H_
