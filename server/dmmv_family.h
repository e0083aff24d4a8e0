// The dmmv family's plug-in: converts a DmmvProblem (validating every
// field) into kernel form, either as given (X, instances) or from a
// builder (FIR design), and runs the DMMV search on the lane's device.
#ifndef SOLVERD_SERVER_DMMV_FAMILY_H_
#define SOLVERD_SERVER_DMMV_FAMILY_H_

#include "server/family.h"

namespace solverd::server {

class DmmvFamily final : public Family {
 public:
  absl::string_view name() const override { return "dmmv"; }
  absl::StatusOr<std::unique_ptr<PreparedJob>> Prepare(
      const v1::JobSpec& spec, const PrepareContext& context) const override;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_DMMV_FAMILY_H_
