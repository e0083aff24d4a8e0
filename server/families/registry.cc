#include "server/families/registry.h"

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/families/dmmv/family.h"
#include "server/families/ot/family.h"
#include "server/families/quant/family.h"
#include "server/families/sor/family.h"

namespace solverd::server {

// A new family adds one line here (and its JobSpec case, its folder and its
// sources; see docs/adding-a-family.md).
const std::vector<FamilyRegistration>& RegisteredFamilies() {
  static const auto* const kFamilies = new std::vector<FamilyRegistration>{
      RegistrationOf<OtFamily>(),
      RegistrationOf<SorFamily>(),
      RegistrationOf<DmmvFamily>(),
      RegistrationOf<QuantFamily>(),
  };
  return *kFamilies;
}

absl::StatusOr<std::unique_ptr<FamilyRegistry>> FamilyRegistry::Create(
    const FamilyServices& services, const std::vector<FamilyRegistration>& registrations) {
  std::unique_ptr<FamilyRegistry> registry(new FamilyRegistry());
  std::set<absl::string_view> names;
  for (const FamilyRegistration& registration : registrations) {
    const FamilyInfo& info = registration.info();
    if (info.name.empty() || !names.insert(info.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("families: name '", info.name, "' is empty or registered twice"));
    }
    auto family = registration.create(services);
    if (!family.ok()) return family.status();
    for (v1::JobSpec::ProblemCase problem : info.problems) {
      const auto* field = v1::JobSpec::descriptor()->FindFieldByNumber(problem);
      if (field == nullptr || field->containing_oneof() == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("families: ", info.name, " claims JobSpec case ", problem,
                         ", which is no problem field"));
      }
      if (!registry->by_problem_.emplace(problem, family->get()).second) {
        return absl::InvalidArgumentError(absl::StrCat(
            "families: ", info.name, " claims JobSpec.", field->name(), ", taken already"));
      }
      absl::StrAppend(&registry->problem_names_, registry->problem_names_.empty() ? "" : ", ",
                      field->name());
    }
    registry->families_.push_back(*std::move(family));
  }
  return registry;
}

const Family* FamilyRegistry::ForProblem(v1::JobSpec::ProblemCase problem) const {
  auto it = by_problem_.find(problem);
  return it == by_problem_.end() ? nullptr : it->second;
}

}  // namespace solverd::server
