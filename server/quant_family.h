// The quant family's plug-in: reads the model (and calibration) file from
// a blob or --data-root, validates both files and every option at submit,
// quantizes layer by layer on the lane's device, and stores the quantized
// file as a blob owned by the submitter.
#ifndef SOLVERD_SERVER_QUANT_FAMILY_H_
#define SOLVERD_SERVER_QUANT_FAMILY_H_

#include "server/family.h"

namespace solverd::server {

class QuantFamily final : public Family {
 public:
  absl::string_view name() const override { return "quant"; }
  // Jobs whose layers hold at most this many weights in all batch together.
  static constexpr int64_t kMaxBatchableWeights = int64_t{1} << 22;

  absl::StatusOr<std::unique_ptr<PreparedJob>> Prepare(
      const v1::JobSpec& spec, const PrepareContext& context) const override;
  // Small jobs run side by side, a CPU thread each: their layers are too
  // small to split across threads.
  void RunBatch(const Lane& lane, std::vector<BatchMember>& batch) const override;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_QUANT_FAMILY_H_
