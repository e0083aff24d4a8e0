// Conversion between the dmmv family's API messages (DmmvProblem,
// DmmvResult) and kernels/dmmv's Problem, Options and Result, building the
// problem first when a builder (FIR design, tomography) is named. Every
// field is validated here; an INVALID_ARGUMENT names it ("dmmv.fir.order:
// ..."). Stateless functions, safe from any thread.
#ifndef SOLVERD_SERVER_FAMILIES_DMMV_CONVERT_H_
#define SOLVERD_SERVER_FAMILIES_DMMV_CONVERT_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "dmmv/dmmv.h"
#include "dmmv/fir.h"
#include "dmmv/tomography.h"
#include "server/blob_store.h"
#include "solverd/v1/dmmv.pb.h"

namespace solverd::server {

// What a builder adds to the result, and how the result is sent.
struct DmmvBuilderOutput {
  bool raw_results = false;  // DmmvProblem.raw_results
  std::optional<::solverd::dmmv::fir::Spec> fir;
  std::optional<v1::TomographyResult> tomography;
  int64_t rays = 0;  // tomography: the problem's first rows
  // Tomography under noise_bound: solved by tomography::Solve (rounds of
  // reweighted neighbour rows), the sinogram dropped.
  std::optional<::solverd::dmmv::tomography::Spec> reweighted;
};

struct DmmvWork {
  ::solverd::dmmv::Problem problem;
  ::solverd::dmmv::Options options;
  DmmvBuilderOutput built;
};

absl::StatusOr<DmmvWork> ConvertDmmvProblem(const v1::DmmvProblem& in, const BlobStore& blobs);

// `problem` is the one solved; `device` is where it ran ("cuda:0").
v1::DmmvResult DmmvResultToProto(const ::solverd::dmmv::Problem& problem,
                                 const ::solverd::dmmv::Result& r, const DmmvBuilderOutput& built,
                                 const std::string& device);

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_FAMILIES_DMMV_CONVERT_H_
