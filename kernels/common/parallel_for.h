// ParallelFor: splits [0, n) into contiguous chunks run on up to `threads`
// threads, the calling thread included, and returns when all are done.
// The other threads come from a process-wide pool (one per core besides
// the caller's), shared by concurrent calls: a call takes whichever workers
// are free and runs the rest of its chunks itself, so calls may nest.
//
// For the CPU backends' row loops. `body(begin, end)` must be safe to run
// concurrently on disjoint ranges. Chunks are static: the loops it serves
// do equal work per index. Each thread gets at least min_items_per_thread
// indices (cheap indices are not worth a thread each).
#ifndef SOLVERD_KERNELS_COMMON_PARALLEL_FOR_H_
#define SOLVERD_KERNELS_COMMON_PARALLEL_FOR_H_

#include <cstdint>
#include <functional>

namespace solverd {

// Below this many items per thread the spawn costs more than it saves.
inline constexpr int64_t kMinItemsPerThread = 64;

void ParallelFor(int64_t n, int threads,
                 const std::function<void(int64_t begin, int64_t end)>& body,
                 int64_t min_items_per_thread = kMinItemsPerThread);

}  // namespace solverd

#endif  // SOLVERD_KERNELS_COMMON_PARALLEL_FOR_H_
