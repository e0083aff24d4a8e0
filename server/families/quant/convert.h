// Conversion between the quant family's API messages (QuantProblem,
// QuantResult) and kernels/quant's ModelOptions and ModelResult (the files
// are read in model_source.h). Every option is validated here; an
// INVALID_ARGUMENT names the field ("quant.bits: ..."). Stateless
// functions, safe from any thread.
#ifndef SOLVERD_SERVER_FAMILIES_QUANT_CONVERT_H_
#define SOLVERD_SERVER_FAMILIES_QUANT_CONVERT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "quant/model.h"
#include "server/families/family.h"
#include "solverd/v1/quant.pb.h"

namespace solverd::server {

absl::StatusOr<::solverd::quant::ModelOptions> QuantOptionsFromProto(const v1::QuantProblem& in);

// `device` is where it ran ("cuda:0").
v1::QuantResult QuantResultToProto(const ::solverd::quant::ModelResult& r,
                                   const ::solverd::quant::ModelOptions& options,
                                   const std::string& device);

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_FAMILIES_QUANT_CONVERT_H_
