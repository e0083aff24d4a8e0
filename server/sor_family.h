// The sor family's plug-in: converts a SorSequence (validating every field)
// and solves its systems in order on the lane's device, each with the omega
// its named tuner picks, feeding every iteration count back to the tuner.
#ifndef SOLVERD_SERVER_SOR_FAMILY_H_
#define SOLVERD_SERVER_SOR_FAMILY_H_

#include "server/family.h"

namespace solverd::server {

class SorFamily final : public Family {
 public:
  absl::string_view name() const override { return "sor"; }
  absl::StatusOr<std::unique_ptr<PreparedJob>> Prepare(
      const v1::JobSpec& spec, const PrepareContext& context) const override;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_SOR_FAMILY_H_
