#include "server/families/dmmv/convert.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "dmmv/tomography.h"
#include "server/status_util.h"
#include "server/tensor_convert.h"

namespace solverd::server {
namespace {

namespace dmmv = ::solverd::dmmv;

dmmv::Levels LevelsFromProto(const v1::DmmvLevels& l) {
  dmmv::Levels out;
  out.lo = l.lo();
  out.step = l.step();
  out.count = l.count();
  out.values.assign(l.values().begin(), l.values().end());
  return out;
}

absl::StatusOr<dmmv::Instance> InstanceFromProto(const v1::DmmvInstance& in,
                                                 const std::string& field,
                                                 const BlobStore& blobs) {
  dmmv::Instance out;
  auto b = ToDense(in.b(), 1, field + ".b", blobs);
  if (!b.ok()) return b.status();
  out.b = std::move(b->values);
  if (!IsEmptyTensor(in.weights())) {
    auto w = ToDense(in.weights(), 1, field + ".weights", blobs);
    if (!w.ok()) return w.status();
    out.weights = std::move(w->values);
  }
  for (const v1::DmmvLevels& l : in.levels()) out.levels.push_back(LevelsFromProto(l));
  out.start_levels.assign(in.start_levels().begin(), in.start_levels().end());
  if (!IsEmptyTensor(in.start_values())) {
    auto v = ToDense(in.start_values(), 1, field + ".start_values", blobs);
    if (!v.ok()) return v.status();
    out.start_values = std::move(v->values);
  }
  return out;
}

// Kernel messages name fields from the problem's root ("x", "instances[0]
// .b", "fir.order"); the API's paths start at the job spec.
absl::Status Prefixed(const ::solverd::Status& s, const char* prefix) {
  absl::Status out = FromKernel(s);
  if (out.ok()) return out;
  return absl::Status(out.code(), absl::StrCat(prefix, out.message()));
}

dmmv::CsrMatrix CsrFromProto(const v1::DmmvCsr& in) {
  dmmv::CsrMatrix out;
  out.row_offsets.assign(in.row_offsets().begin(), in.row_offsets().end());
  out.columns.assign(in.columns().begin(), in.columns().end());
  out.values.assign(in.values().begin(), in.values().end());
  return out;
}

// X's sparse form from x_csr or x_csr_blob_id (a serialized DmmvCsr).
absl::Status SparseXFromProto(const v1::DmmvDirect& in, const BlobStore& blobs,
                              dmmv::Problem* p) {
  v1::DmmvCsr from_blob;
  const v1::DmmvCsr* csr = &in.x_csr();
  std::string field = "dmmv.direct.x_csr";
  if (!in.x_csr_blob_id().empty()) {
    field = "dmmv.direct.x_csr_blob_id";
    auto blob = blobs.Get(in.x_csr_blob_id());
    if (!blob.ok()) return blob.status();
    if (!from_blob.ParseFromString(*blob->bytes)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": blob ", in.x_csr_blob_id(), " is not a serialized DmmvCsr"));
    }
    csr = &from_blob;
  }
  if (csr->row_offsets().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".row_offsets: needs rows + 1 entries"));
  }
  p->rows = csr->row_offsets_size() - 1;
  p->cols = csr->cols();
  p->x_csr = CsrFromProto(*csr);
  return absl::OkStatus();
}

absl::StatusOr<dmmv::Problem> DirectFromProto(const v1::DmmvDirect& in, const BlobStore& blobs) {
  dmmv::Problem p;
  const int forms = !IsEmptyTensor(in.x()) + in.has_x_csr() + !in.x_csr_blob_id().empty();
  if (forms > 1) {
    return absl::InvalidArgumentError("dmmv.direct: set one of x, x_csr, x_csr_blob_id");
  }
  if (in.has_x_csr() || !in.x_csr_blob_id().empty()) {
    if (absl::Status s = SparseXFromProto(in, blobs, &p); !s.ok()) return s;
  } else {
    auto x = ToDense(in.x(), 2, "dmmv.direct.x", blobs);
    if (!x.ok()) return x.status();
    p.rows = x->shape[0];
    p.cols = x->shape[1];
    p.x = std::move(x->values);
  }
  for (int i = 0; i < in.instances_size(); ++i) {
    auto inst = InstanceFromProto(in.instances(i), absl::StrCat("dmmv.direct.instances[", i, "]"),
                                  blobs);
    if (!inst.ok()) return inst.status();
    p.instances.push_back(*std::move(inst));
  }
  return p;
}

absl::StatusOr<dmmv::tomography::Spec> TomographyFromProto(const v1::Tomography& in,
                                                           const BlobStore& blobs) {
  dmmv::tomography::Spec spec;
  spec.size = in.size();
  spec.angles = in.angles();
  spec.detectors = in.detectors();
  spec.levels.assign(in.levels().begin(), in.levels().end());
  switch (in.start()) {
    case v1::TOMOGRAPHY_START_SART: spec.start = dmmv::tomography::Method::kSart; break;
    case v1::TOMOGRAPHY_START_SIRT: spec.start = dmmv::tomography::Method::kSirt; break;
    case v1::TOMOGRAPHY_START_BEST: spec.start = dmmv::tomography::Method::kBest; break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("dmmv.tomography.start: unknown value ", in.start()));
  }
  spec.start_iterations = in.start_iterations();
  // 0 keeps the default; negative settles no pixel; NaN reaches Validate.
  if (const double settled = in.settled_within(); settled != 0) {
    spec.settled_within = settled < 0 ? 0.0 : settled;
  }
  spec.noise_bound = in.noise_bound();  // NaN and negatives reach Validate
  // 0 keeps the default; negative: no smoothness rows.
  if (const double smoothness = in.smoothness(); smoothness != 0) {
    spec.smoothness = smoothness < 0 ? 0.0 : smoothness;
  }
  // 0 keeps the default; negative: none.
  if (const int rounds = in.reweight_rounds(); rounds != 0) {
    spec.reweight_rounds = rounds < 0 ? 0 : rounds;
  }
  auto sinogram = ToDense(in.sinogram(), 2, "dmmv.tomography.sinogram", blobs);
  if (!sinogram.ok()) return sinogram.status();
  spec.sinogram = std::move(sinogram->values);
  if (absl::Status s = Prefixed(dmmv::tomography::Validate(spec), "dmmv."); !s.ok()) return s;
  if (sinogram->shape[0] != spec.angles) {  // the right count, the wrong shape
    return absl::InvalidArgumentError(absl::StrCat(
        "dmmv.tomography.sinogram: shape [", sinogram->shape[0], ", ", sinogram->shape[1],
        "], expected [angles, detectors] = [", spec.angles, ", ",
        dmmv::tomography::Detectors(spec), "]"));
  }
  return spec;
}

dmmv::fir::Spec FirFromProto(const v1::FirDesign& in) {
  dmmv::fir::Spec spec;
  spec.type = in.type() == v1::FIR_TYPE_HIGH_PASS   ? dmmv::fir::Type::kHighPass
              : in.type() == v1::FIR_TYPE_BAND_PASS ? dmmv::fir::Type::kBandPass
                                                    : dmmv::fir::Type::kLowPass;
  spec.order = in.order();
  spec.edges.assign(in.edges().begin(), in.edges().end());
  spec.bits = in.bits() == 0 ? 8 : in.bits();
  return spec;
}

}  // namespace

absl::StatusOr<DmmvWork> ConvertDmmvProblem(const v1::DmmvProblem& in, const BlobStore& blobs) {
  dmmv::Problem problem;
  DmmvBuilderOutput built;
  built.raw_results = in.raw_results();
  bool least_squares = false;
  switch (in.source_case()) {
    case v1::DmmvProblem::kDirect: {
      auto direct = DirectFromProto(in.direct(), blobs);
      if (!direct.ok()) return direct.status();
      problem = *std::move(direct);
      break;
    }
    case v1::DmmvProblem::kFir: {
      built.fir = FirFromProto(in.fir());
      if (absl::Status s = Prefixed(dmmv::fir::Build(*built.fir, &problem), "dmmv."); !s.ok()) {
        return s;
      }
      break;
    }
    case v1::DmmvProblem::kTomography: {
      auto spec = TomographyFromProto(in.tomography(), blobs);
      if (!spec.ok()) return spec.status();
      std::vector<double> start;
      if (absl::Status s = Prefixed(dmmv::tomography::Build(*spec, &problem, &start), "dmmv.");
          !s.ok()) {
        return s;
      }
      v1::TomographyResult& t = built.tomography.emplace();
      built.rays = dmmv::tomography::Rays(*spec);
      t.set_size(spec->size);
      t.set_detectors(dmmv::tomography::Detectors(*spec));
      if (built.raw_results) {
        t.set_start_image_raw(RawBytes(start));
      } else {
        t.mutable_start_image()->Add(start.begin(), start.end());
      }
      t.set_start_max_residual(dmmv::tomography::MaxRayResidual(
          problem, built.rays, dmmv::tomography::RoundToLevels(start, spec->levels)));
      least_squares = spec->least_squares();
      if (spec->least_squares() && spec->reweight_rounds > 0) {
        built.reweighted = std::move(*spec);
        built.reweighted->sinogram.clear();  // in the problem's b already
      }
      break;
    }
    default:
      return absl::InvalidArgumentError("dmmv.source: set one of: direct, fir, tomography");
  }
  if (absl::Status s = Prefixed(dmmv::ValidateProblem(problem), "dmmv.direct."); !s.ok()) return s;
  dmmv::Options options;
  if (in.max_outer_iterations() < -1) {
    return absl::InvalidArgumentError("dmmv.max_outer_iterations: -1 (local search only), 0 "
                                      "(the default, 200) or positive");
  }
  if (in.max_outer_iterations() != 0) {
    options.max_outer_iterations = std::max<int64_t>(0, in.max_outer_iterations());
  }
  if (!(in.time_limit_seconds() >= 0)) {
    return absl::InvalidArgumentError("dmmv.time_limit_seconds: must be non-negative");
  }
  options.time_limit_seconds = in.time_limit_seconds();
  if (in.destroy_size() < 0) return absl::InvalidArgumentError("dmmv.destroy_size: negative");
  options.destroy_size = in.destroy_size();
  if (in.seed() != 0) options.seed = in.seed();
  if (in.stall_rounds() < 0) return absl::InvalidArgumentError("dmmv.stall_rounds: negative");
  options.stall_rounds = in.stall_rounds();
  options.least_squares = least_squares;
  options.max_over_instances = in.max_over_instances();
  if (!(in.violation_cap() >= 0 && std::isfinite(in.violation_cap()))) {
    return absl::InvalidArgumentError("dmmv.violation_cap: must be finite and non-negative");
  }
  options.violation_cap = in.violation_cap();
  return DmmvWork{std::move(problem), options, std::move(built)};
}


v1::DmmvResult DmmvResultToProto(const dmmv::Problem& problem, const dmmv::Result& r,
                                 const DmmvBuilderOutput& built, const std::string& device) {
  const std::optional<dmmv::fir::Spec>& fir = built.fir;
  v1::DmmvResult out;
  for (const dmmv::InstanceResult& ir : r.instances) {
    v1::DmmvInstanceResult* o = out.add_instances();
    if (built.raw_results) {
      o->set_level_indices_raw(RawBytes(ir.level_indices));
      o->set_values_raw(RawBytes(ir.values));
    } else {
      o->mutable_level_indices()->Add(ir.level_indices.begin(), ir.level_indices.end());
      o->mutable_values()->Add(ir.values.begin(), ir.values.end());
    }
    o->set_max_violation(ir.max_violation);
    o->set_l2(ir.l2);
    o->set_start_max_violation(ir.start_max_violation);
    o->set_moves(ir.moves);
    o->set_outer_iterations(ir.outer_iterations);
  }
  if (fir.has_value() && !r.instances.empty()) {
    const std::vector<int64_t> taps = dmmv::fir::IntegerTaps(*fir, r.instances[0]);
    const dmmv::fir::Response response = dmmv::fir::Evaluate(*fir, r.instances[0].values);
    v1::FirResult* f = out.mutable_fir();
    f->mutable_taps()->Add(taps.begin(), taps.end());
    f->set_scale(1.0 / static_cast<double>(int64_t{1} << (fir->bits - 1)));
    f->set_passband_deviation(response.passband_deviation);
    f->set_stopband_peak(response.stopband_peak);
    f->set_max_error(response.max_error);
  }
  if (built.tomography.has_value()) {
    *out.mutable_tomography() = *built.tomography;
    if (!r.instances.empty()) {
      out.mutable_tomography()->set_max_residual(
          dmmv::tomography::MaxRayResidual(problem, built.rays, r.instances[0].values));
    }
  }
  out.set_seconds(r.seconds);
  out.set_device(device);
  return out;
}

}  // namespace solverd::server
