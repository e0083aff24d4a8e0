// Family's shared batch runners.
#include "server/families/family.h"

#include "common/parallel_for.h"

namespace solverd::server {

void Family::RunBatch(const Lane& lane, std::vector<BatchMember>& batch) const {
  for (BatchMember& m : batch) *m.outcome = m.job->Run(lane, m.sink, m.cancel);
}

void SolveSideBySide(const Lane& lane, int64_t count,
                     const std::function<void(const Lane& single, int64_t k)>& solve) {
  Lane single = lane;
  single.cpu_threads = 1;
  ::solverd::ParallelFor(
      count, lane.device.is_cuda() ? 1 : lane.cpu_threads,
      [&](int64_t begin, int64_t end) {
        for (int64_t k = begin; k < end; ++k) solve(single, k);
      },
      /*min_items_per_thread=*/1);
}

void Family::RunSideBySide(const Lane& lane, std::vector<BatchMember>& batch) const {
  if (lane.device.is_cuda() || batch.size() < 2 || lane.cpu_threads < 2) {
    Family::RunBatch(lane, batch);
    return;
  }
  SolveSideBySide(lane, static_cast<int64_t>(batch.size()), [&](const Lane& single, int64_t k) {
    *batch[k].outcome = batch[k].job->Run(single, batch[k].sink, batch[k].cancel);
  });
}

}  // namespace solverd::server
