// The ot family's plug-in: converts OtProblem to ot::Problem (validating
// every field) and runs it with kernels/ot on the lane's device.
// Stateless, so thread-safe.
#ifndef SOLVERD_SERVER_FAMILIES_OT_FAMILY_H_
#define SOLVERD_SERVER_FAMILIES_OT_FAMILY_H_

#include "server/families/family.h"
#include "server/families/registry.h"

namespace solverd::server {

class OtFamily final : public Family {
 public:
  static const FamilyInfo& Info();  // ot and ot_batch; --max_ot_entries
  static absl::StatusOr<std::unique_ptr<Family>> Create(const FamilyServices& services);
  OtFamily() : Family(Info()) {}

  // Problems up to this many cost entries may be batched together.
  static constexpr int64_t kMaxBatchableEntries = 256 * 256;
  // Problems in one OtBatch job at most.
  static constexpr int kMaxProblemsPerJob = 100000;

  absl::StatusOr<std::unique_ptr<PreparedJob>> Prepare(
      const v1::JobSpec& spec, const PrepareContext& context) const override;
  // On a CPU lane, solves the batch's problems side by side, one per lane
  // thread; on a CUDA lane, by ot::SolveBatch: their Sinkhorn iterations as
  // one launch per pass over all of them.
  void RunBatch(const Lane& lane, std::vector<BatchMember>& batch) const override;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_FAMILIES_OT_FAMILY_H_
