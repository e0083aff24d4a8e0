#include "server/dmmv_family.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "dmmv/dmmv.h"
#include "dmmv/fir.h"
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

absl::StatusOr<dmmv::Problem> DirectFromProto(const v1::DmmvDirect& in, const BlobStore& blobs) {
  auto x = ToDense(in.x(), 2, "dmmv.direct.x", blobs);
  if (!x.ok()) return x.status();
  dmmv::Problem p;
  p.rows = x->shape[0];
  p.cols = x->shape[1];
  p.x = std::move(x->values);
  for (int i = 0; i < in.instances_size(); ++i) {
    auto inst = InstanceFromProto(in.instances(i), absl::StrCat("dmmv.direct.instances[", i, "]"),
                                  blobs);
    if (!inst.ok()) return inst.status();
    p.instances.push_back(*std::move(inst));
  }
  return p;
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

// Kernel messages name fields from the problem's root ("x", "instances[0]
// .b", "fir.order"); the API's paths start at the job spec.
absl::Status Prefixed(const ::solverd::Status& s, const char* prefix) {
  absl::Status out = FromKernel(s);
  if (out.ok()) return out;
  return absl::Status(out.code(), absl::StrCat(prefix, out.message()));
}

v1::DmmvResult ResultToProto(const dmmv::Result& r, const std::optional<dmmv::fir::Spec>& fir,
                             const std::string& device) {
  v1::DmmvResult out;
  for (const dmmv::InstanceResult& ir : r.instances) {
    v1::DmmvInstanceResult* o = out.add_instances();
    o->mutable_level_indices()->Add(ir.level_indices.begin(), ir.level_indices.end());
    o->mutable_values()->Add(ir.values.begin(), ir.values.end());
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
  out.set_seconds(r.seconds);
  out.set_device(device);
  return out;
}

class PreparedDmmv final : public PreparedJob {
 public:
  PreparedDmmv(dmmv::Problem problem, dmmv::Options options, std::optional<dmmv::fir::Spec> fir)
      : problem_(std::move(problem)), options_(options), fir_(std::move(fir)) {}

  int64_t MemoryBytes() const override { return dmmv::MemoryBytes(problem_); }
  int64_t ProblemSize() const override { return problem_.rows * problem_.cols; }

  JobOutcome Run(const Lane& lane, ::solverd::ProgressSink* sink,
                 const ::solverd::CancelToken* cancel) override {
    dmmv::Options options = options_;
    options.threads = lane.cpu_threads;
    dmmv::Result result;
    const ::solverd::Status s =
        dmmv::Solve(lane.device, lane.stream, problem_, options, sink, cancel, &result);
    JobOutcome outcome;
    outcome.status = FromKernel(s);
    if (!result.instances.empty()) {
      outcome.result.emplace();
      *outcome.result->mutable_dmmv() = ResultToProto(result, fir_, lane.device.ToString());
      for (const dmmv::InstanceResult& ir : result.instances) outcome.iterations += ir.moves;
    }
    return outcome;
  }

 private:
  const dmmv::Problem problem_;
  const dmmv::Options options_;
  const std::optional<dmmv::fir::Spec> fir_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PreparedJob>> DmmvFamily::Prepare(
    const v1::JobSpec& spec, const PrepareContext& context) const {
  const v1::DmmvProblem& in = spec.dmmv();
  dmmv::Problem problem;
  std::optional<dmmv::fir::Spec> fir;
  switch (in.source_case()) {
    case v1::DmmvProblem::kDirect: {
      auto direct = DirectFromProto(in.direct(), context.blobs);
      if (!direct.ok()) return direct.status();
      problem = *std::move(direct);
      break;
    }
    case v1::DmmvProblem::kFir: {
      fir = FirFromProto(in.fir());
      if (absl::Status s = Prefixed(dmmv::fir::Build(*fir, &problem), "dmmv."); !s.ok()) return s;
      break;
    }
    default:
      return absl::InvalidArgumentError("dmmv.source: set one of: direct, fir");
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
  return std::make_unique<PreparedDmmv>(std::move(problem), options, std::move(fir));
}

}  // namespace solverd::server
