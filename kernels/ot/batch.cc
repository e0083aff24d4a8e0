#include "ot/batch.h"

#include <algorithm>

#include "ot/ot_backend.h"

namespace solverd::ot {
namespace {

#ifdef SOLVERD_HAVE_CUDA
// Whether the batched Sinkhorn loop can run this item's Sinkhorn stage
// (and SinkhornBatchCuda the rest).
bool Batchable(const BatchItem& item) {
  return item.options.sparse_plan_threshold == 0 && ValidateOptions(item.options).ok();
}

// Runs the batchable items of the first batchable one's shape together,
// leaving in *alone the others.
Status BatchOnCuda(const Device& device, StreamHandle stream, std::vector<BatchItem*>* alone) {
  std::vector<BatchItem*> group, rest;
  for (BatchItem* item : *alone) {
    const bool fits = Batchable(*item) &&
                      (group.empty() || (item->problem->n == group[0]->problem->n &&
                                         item->problem->m == group[0]->problem->m));
    (fits ? group : rest).push_back(item);
  }
  if (group.size() < 2) return Status::Ok();
  *alone = std::move(rest);
  // The problem is a grid dimension, which CUDA caps at 65535.
  constexpr size_t kMaxProblemsPerLaunch = 65535;
  for (size_t first = 0; first < group.size(); first += kMaxProblemsPerLaunch) {
    const size_t end = std::min(group.size(), first + kMaxProblemsPerLaunch);
    const std::vector<BatchItem*> part(group.begin() + first, group.begin() + end);
    SOLVERD_RETURN_IF_ERROR(internal::SinkhornBatchCuda(device, stream, part));
  }
  return Status::Ok();
}
#endif

}  // namespace

Status SolveBatch(const Device& device, StreamHandle stream, std::vector<BatchItem>* items) {
  std::vector<BatchItem*> alone;
  for (BatchItem& item : *items) alone.push_back(&item);
#ifdef SOLVERD_HAVE_CUDA
  if (device.is_cuda()) SOLVERD_RETURN_IF_ERROR(BatchOnCuda(device, stream, &alone));
#endif
  for (BatchItem* item : alone) {
    item->batched = false;
    item->status = Solve(device, stream, *item->problem, item->options, item->sink,
                         item->cancel, &item->result);
  }
  return Status::Ok();
}

}  // namespace solverd::ot
