// The quant family's plug-in: reads the model (and calibration) file from
// a blob or --data-root, validates both files and every option at submit,
// quantizes layer by layer on the lane's device, and stores the quantized
// file as a blob owned by the submitter.
// Thread-safe: its only state, the output blob store, locks itself.
#ifndef SOLVERD_SERVER_FAMILIES_QUANT_FAMILY_H_
#define SOLVERD_SERVER_FAMILIES_QUANT_FAMILY_H_

#include "server/families/family.h"
#include "server/families/registry.h"

namespace solverd::server {

class QuantFamily final : public Family {
 public:
  static const FamilyInfo& Info();  // quant; --max_quant_model_bytes
  // Quantized files are stored as blobs in services.blobs, charged to the
  // job's owner.
  static absl::StatusOr<std::unique_ptr<Family>> Create(const FamilyServices& services);
  explicit QuantFamily(BlobStore* outputs) : Family(Info()), outputs_(outputs) {}

  // Jobs whose layers hold at most this many weights in all batch together.
  static constexpr int64_t kMaxBatchableWeights = int64_t{1} << 22;

  absl::StatusOr<std::unique_ptr<PreparedJob>> Prepare(
      const v1::JobSpec& spec, const PrepareContext& context) const override;
  // Small jobs run side by side, a CPU thread each: their layers are too
  // small to split across threads.
  void RunBatch(const Lane& lane, std::vector<BatchMember>& batch) const override;

 private:
  BlobStore* const outputs_;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_FAMILIES_QUANT_FAMILY_H_
