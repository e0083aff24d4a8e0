#include "server/family.h"

#include "server/dmmv_family.h"
#include "server/ot_family.h"
#include "server/quant_family.h"
#include "server/sor_family.h"

namespace solverd::server {

void Family::RunBatch(const Lane& lane, std::vector<BatchMember>& batch) const {
  for (BatchMember& m : batch) *m.outcome = m.job->Run(lane, m.sink, m.cancel);
}

const Family* FamilyFor(v1::JobSpec::ProblemCase problem) {
  static const OtFamily* const kOt = new OtFamily();
  static const SorFamily* const kSor = new SorFamily();
  static const DmmvFamily* const kDmmv = new DmmvFamily();
  static const QuantFamily* const kQuant = new QuantFamily();
  switch (problem) {
    case v1::JobSpec::kOt:
    case v1::JobSpec::kOtBatch: return kOt;
    case v1::JobSpec::kSor: return kSor;
    case v1::JobSpec::kDmmv: return kDmmv;
    case v1::JobSpec::kQuant: return kQuant;
    case v1::JobSpec::PROBLEM_NOT_SET: return nullptr;
  }
  return nullptr;
}

}  // namespace solverd::server
