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
  absl::StatusOr<std::unique_ptr<PreparedJob>> Prepare(
      const v1::JobSpec& spec, const PrepareContext& context) const override;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_QUANT_FAMILY_H_
