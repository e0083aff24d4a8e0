// Conversion between the quant family's API messages (QuantProblem,
// QuantResult) and kernels/quant's ModelOptions and ModelResult, and the
// reading of a job's model and calibration files (a blob, or a file under
// --data-root). Every option is validated here; an INVALID_ARGUMENT names
// the field ("quant.bits: ..."). Stateless functions, safe from any thread.
#ifndef SOLVERD_SERVER_FAMILIES_QUANT_CONVERT_H_
#define SOLVERD_SERVER_FAMILIES_QUANT_CONVERT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "quant/model.h"
#include "server/families/family.h"
#include "solverd/v1/quant.pb.h"

namespace solverd::server {

// A file's bytes, shared with the blob store when it came from a blob.
using QuantBytes = std::shared_ptr<const std::string>;

// `field` is the file's path in the request ("quant.model").
absl::StatusOr<QuantBytes> ReadQuantFile(const v1::QuantFile& file, const std::string& field,
                                         const PrepareContext& context);

absl::StatusOr<::solverd::quant::ModelOptions> QuantOptionsFromProto(const v1::QuantProblem& in);

// `device` is where it ran ("cuda:0").
v1::QuantResult QuantResultToProto(const ::solverd::quant::ModelResult& r,
                                   const ::solverd::quant::ModelOptions& options,
                                   const std::string& device);

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_FAMILIES_QUANT_CONVERT_H_
