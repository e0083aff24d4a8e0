// Conversion between the ot family's API messages (OtProblem, OtResult) and
// kernels/ot's Problem, Options and Result. Every field is validated here,
// so bad input is rejected at submit; an INVALID_ARGUMENT names the field
// under the caller's prefix ("ot.a: ...", "ot_batch.problems[3].cost: ...").
// Stateless functions, safe from any thread.
#ifndef SOLVERD_SERVER_FAMILIES_OT_CONVERT_H_
#define SOLVERD_SERVER_FAMILIES_OT_CONVERT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ot/ot.h"
#include "server/blob_store.h"
#include "solverd/v1/ot.pb.h"

namespace solverd::server {

struct OtWork {
  ot::Problem problem;
  ot::Options options;
};

// `field` is the path of `in` in the request ("ot").
absl::StatusOr<OtWork> ConvertOtProblem(const v1::OtProblem& in, const BlobStore& blobs,
                                         absl::string_view field);

v1::OtResult OtResultToProto(const ot::Result& r, const ot::Problem& p,
                            const std::string& device);

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_FAMILIES_OT_CONVERT_H_
