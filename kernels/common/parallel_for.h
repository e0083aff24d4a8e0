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

// How many parts ParallelForParts() splits n items into on up to `threads`
// threads, each part at least min_items_per_thread items (at least one
// part).
int64_t PartCount(int64_t n, int threads, int64_t min_items_per_thread = kMinItemsPerThread);

// Runs body(part, begin, end) for part in [0, parts), each on a thread of
// its own, over contiguous ranges of [0, n) of equal size but the last,
// in order of part: for loops that keep state per part (accumulators,
// buffers) to combine in that order afterwards.
void ParallelForParts(int64_t n, int64_t parts,
                      const std::function<void(int64_t part, int64_t begin, int64_t end)>& body);

}  // namespace solverd

#endif  // SOLVERD_KERNELS_COMMON_PARALLEL_FOR_H_
