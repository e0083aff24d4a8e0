// The sor family's plug-in: converts a SorSequence (validating every field)
// and solves its systems in order on the lane's device, each with the omega
// its named tuner picks, feeding every iteration count back to the tuner.
// Thread-safe: its only state, the tuner registry, locks itself.
#ifndef SOLVERD_SERVER_FAMILIES_SOR_FAMILY_H_
#define SOLVERD_SERVER_FAMILIES_SOR_FAMILY_H_

#include <memory>

#include "server/families/family.h"
#include "server/families/registry.h"
#include "server/families/sor/tuner_registry.h"

namespace solverd::server {

class SorFamily final : public Family {
 public:
  static const FamilyInfo& Info();  // sor; --max_sor_nonzeros
  // Owns the server's tuners (--max_tuners, kept under --state_dir), loaded
  // here; files it cannot read become warnings.
  static absl::StatusOr<std::unique_ptr<Family>> Create(const FamilyServices& services);
  explicit SorFamily(std::unique_ptr<TunerRegistry> tuners)
      : Family(Info()), tuners_(std::move(tuners)) {}

  // The tuners jobs name (sor.tuner) and the tuner RPCs manage.
  TunerRegistry& tuners() const { return *tuners_; }
  absl::StatusOr<std::unique_ptr<PreparedJob>> Prepare(
      const v1::JobSpec& spec, const PrepareContext& context) const override;

 private:
  const std::unique_ptr<TunerRegistry> tuners_;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_FAMILIES_SOR_FAMILY_H_
