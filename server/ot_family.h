// The ot family's plug-in: converts OtProblem to ot::Problem (validating
// every field) and runs it with kernels/ot on the lane's device.
#ifndef SOLVERD_SERVER_OT_FAMILY_H_
#define SOLVERD_SERVER_OT_FAMILY_H_

#include "server/family.h"

namespace solverd::server {

class OtFamily final : public Family {
 public:
  absl::string_view name() const override { return "ot"; }
  absl::StatusOr<std::unique_ptr<PreparedJob>> Prepare(
      const v1::JobSpec& spec, const BlobStore& blobs) const override;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_OT_FAMILY_H_
