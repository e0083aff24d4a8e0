// FamilyRegistry: the families one server runs, found by JobSpec case.
//
// RegisteredFamilies() is the one list a new family joins (registry.cc);
// FamilyRegistry::Create() makes each family once for a server, handing it
// the server's options and stores, so families can own services (sor's
// tuners, quant's output store) without the job manager knowing of them.
// The job manager, recovery and the gRPC layer look families up here and
// never name one. Immutable after Create(), so thread-safe.
//
//   auto families = FamilyRegistry::Create(services);
//   const Family* family = (*families)->ForProblem(spec.problem_case());
//   if (family == nullptr) ... (*families)->problem_names() ...
#ifndef SOLVERD_SERVER_FAMILIES_REGISTRY_H_
#define SOLVERD_SERVER_FAMILIES_REGISTRY_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/families/family.h"
#include "server/options.h"

namespace solverd::server {

// What a family is made with: the server's options and shared stores.
// Everything pointed to outlives the families.
struct FamilyServices {
  const ServerOptions* options;
  BlobStore* blobs;                    // uploaded inputs; where outputs go
  std::vector<std::string>* warnings;  // for the startup log (e.g. a bad saved file)
};

// How the registry makes one family: its static description and a factory.
struct FamilyRegistration {
  const FamilyInfo& (*info)();
  absl::StatusOr<std::unique_ptr<Family>> (*create)(const FamilyServices&);
};

// The registration of a family class F, which provides
//   static const FamilyInfo& Info();
//   static absl::StatusOr<std::unique_ptr<Family>> Create(const FamilyServices&);
template <typename F>
FamilyRegistration RegistrationOf() {
  return {&F::Info, &F::Create};
}

// Every family this build serves, in the order listings show them.
const std::vector<FamilyRegistration>& RegisteredFamilies();

class FamilyRegistry {
 public:
  // Makes every family of `registrations`. INVALID_ARGUMENT when two claim
  // the same JobSpec case or name; a family's own error as it gave it.
  static absl::StatusOr<std::unique_ptr<FamilyRegistry>> Create(
      const FamilyServices& services,
      const std::vector<FamilyRegistration>& registrations = RegisteredFamilies());
  FamilyRegistry(const FamilyRegistry&) = delete;
  FamilyRegistry& operator=(const FamilyRegistry&) = delete;

  // The family that takes `problem`, or nullptr.
  const Family* ForProblem(v1::JobSpec::ProblemCase problem) const;
  // The family of class F, or nullptr when this server has none (for the
  // RPCs that reach a family's own services, e.g. sor's tuners).
  template <typename F>
  F* Find() const {
    for (const auto& family : families_) {
      if (auto* found = dynamic_cast<F*>(family.get())) return found;
    }
    return nullptr;
  }
  // "ot, ot_batch, sor, dmmv, quant": the JobSpec fields some family takes,
  // for errors that list them.
  const std::string& problem_names() const { return problem_names_; }
  const std::vector<std::unique_ptr<Family>>& families() const { return families_; }

 private:
  FamilyRegistry() = default;

  std::vector<std::unique_ptr<Family>> families_;
  std::map<v1::JobSpec::ProblemCase, const Family*> by_problem_;
  std::string problem_names_;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_FAMILIES_REGISTRY_H_
