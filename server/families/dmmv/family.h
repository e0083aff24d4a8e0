// The dmmv family's plug-in: converts a DmmvProblem (validating every
// field) into kernel form, either as given (X, instances) or from a
// builder (FIR design), and runs the DMMV search on the lane's device.
// Stateless, so thread-safe.
#ifndef SOLVERD_SERVER_FAMILIES_DMMV_FAMILY_H_
#define SOLVERD_SERVER_FAMILIES_DMMV_FAMILY_H_

#include "server/families/family.h"
#include "server/families/registry.h"

namespace solverd::server {

class DmmvFamily final : public Family {
 public:
  static const FamilyInfo& Info();  // dmmv; --max_dmmv_entries
  static absl::StatusOr<std::unique_ptr<Family>> Create(const FamilyServices& services);
  DmmvFamily() : Family(Info()) {}

  absl::StatusOr<std::unique_ptr<PreparedJob>> Prepare(
      const v1::JobSpec& spec, const PrepareContext& context) const override;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_FAMILIES_DMMV_FAMILY_H_
