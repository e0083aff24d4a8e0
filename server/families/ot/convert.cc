// Conversion between the ot family's API messages and kernels/ot types.
#include "server/families/ot/convert.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "server/status_util.h"
#include "server/tensor_convert.h"

namespace solverd::server {
namespace {

constexpr int64_t kMaxPlanEntries = int64_t{1} << 22;

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ".", why));
}

absl::Status SetCost(const v1::OtProblem& in, const BlobStore& blobs, absl::string_view field,
                     ot::Problem* p) {
  if (in.has_cost()) {
    auto cost = ToDense(in.cost(), 2, absl::StrCat(field, ".cost"), blobs);
    if (!cost.ok()) return cost.status();
    p->n = cost->shape[0];
    p->m = cost->shape[1];
    p->cost = std::move(cost->values);
    return absl::OkStatus();
  }
  if (!in.has_points()) return Invalid(field, "cost: set cost or points");
  auto x = ToDense(in.points().x(), 2, absl::StrCat(field, ".points.x"), blobs);
  if (!x.ok()) return x.status();
  auto y = ToDense(in.points().y(), 2, absl::StrCat(field, ".points.y"), blobs);
  if (!y.ok()) return y.status();
  if (x->shape[1] != y->shape[1]) {
    return Invalid(field, absl::StrCat("points.y: dimension ", y->shape[1],
                                " differs from points.x dimension ", x->shape[1]));
  }
  p->n = x->shape[0];
  p->m = y->shape[0];
  p->dim = x->shape[1];
  p->x_points = std::move(x->values);
  p->y_points = std::move(y->values);
  p->cost_power = in.points().p() == 0 ? 2 : in.points().p();
  return absl::OkStatus();
}

absl::Status SetMarginals(const v1::OtProblem& in, const BlobStore& blobs,
                          absl::string_view field, ot::Problem* p) {
  for (bool source : {true, false}) {
    const v1::Tensor& t = source ? in.a() : in.b();
    std::vector<double>& out = source ? p->a : p->b;
    const int64_t size = source ? p->n : p->m;
    if (IsEmptyTensor(t)) continue;
    auto dense = ToDense(t, 1, absl::StrCat(field, source ? ".a" : ".b"), blobs);
    if (!dense.ok()) return dense.status();
    out = std::move(dense->values);
    if (static_cast<int64_t>(out.size()) != size) {
      return Invalid(field, absl::StrCat(source ? "a" : "b", ": has ", out.size(),
                                  " entries, expected ", size));
    }
  }
  // Unset marginals are uniform, with the mass of the other one when given.
  double mass = 1;
  if (!p->a.empty()) {
    mass = 0;
    for (double v : p->a) mass += v;
  } else if (!p->b.empty()) {
    mass = 0;
    for (double v : p->b) mass += v;
  }
  if (p->a.empty()) p->a.assign(p->n, mass / p->n);
  if (p->b.empty()) p->b.assign(p->m, mass / p->m);
  return absl::OkStatus();
}

absl::StatusOr<ot::Options> ToOptions(const v1::OtProblem& in, int64_t entries,
                                      absl::string_view field) {
  ot::Options o;
  switch (in.method()) {
    case v1::OT_METHOD_UNSPECIFIED:
    case v1::OT_METHOD_AUTO: o.method = ot::Method::kAuto; break;
    case v1::OT_METHOD_SINKHORN: o.method = ot::Method::kSinkhorn; break;
    case v1::OT_METHOD_SNS: o.method = ot::Method::kSns; break;
    default: return Invalid(field, "method: unknown method");
  }
  if (in.sns_sinkhorn_steps() != 0) o.sns_sinkhorn_steps = in.sns_sinkhorn_steps();
  o.sparsity = in.sparsity();
  o.overrelaxation = in.overrelaxation();
  if (in.tolerance() != 0) o.tolerance = in.tolerance();
  if (in.max_iterations() != 0) o.max_iterations = in.max_iterations();
  if (in.check_every() != 0) o.check_every = in.check_every();
  if (in.has_time_limit()) {
    o.time_limit_seconds =
        google::protobuf::util::TimeUtil::DurationToNanoseconds(in.time_limit()) * 1e-9;
    if (o.time_limit_seconds <= 0) return Invalid(field, "time_limit: must be positive");
  }
  o.want_plan = in.return_plan();
  o.sparse_plan_threshold = in.sparse_plan_threshold();
  if (o.want_plan && entries > kMaxPlanEntries) {
    return Invalid(field, absl::StrCat("return_plan: a dense plan of ", entries,
                                " entries is over the limit of ", kMaxPlanEntries));
  }
  absl::Status s = FromKernel(ot::ValidateOptions(o));
  if (!s.ok()) return Invalid(field, s.message());
  return o;
}

}  // namespace

v1::OtResult OtResultToProto(const ot::Result& r, const ot::Problem& p,
                            const std::string& device) {
  v1::OtResult out;
  out.set_transport_cost(r.transport_cost);
  out.set_entropic_objective(r.entropic_objective);
  out.set_marginal_error(r.marginal_error);
  out.set_iterations(r.iterations);
  out.set_sinkhorn_iterations(r.sinkhorn_iterations);
  out.set_newton_iterations(r.newton_iterations);
  out.set_sinkhorn_seconds(r.sinkhorn_seconds);
  out.set_newton_seconds(r.newton_seconds);
  out.set_cg_seconds(r.cg_seconds);
  switch (r.termination) {
    case ot::Termination::kConverged: out.set_termination(v1::OT_TERMINATION_CONVERGED); break;
    case ot::Termination::kMaxIterations:
      out.set_termination(v1::OT_TERMINATION_MAX_ITERATIONS);
      break;
    case ot::Termination::kTimeLimit: out.set_termination(v1::OT_TERMINATION_TIME_LIMIT); break;
    case ot::Termination::kStopped: out.set_termination(v1::OT_TERMINATION_STOPPED); break;
  }
  out.mutable_potential_x()->Assign(r.x.begin(), r.x.end());
  out.mutable_potential_y()->Assign(r.y.begin(), r.y.end());
  if (!r.plan.empty()) {
    v1::Tensor* plan = out.mutable_plan();
    plan->add_shape(p.n);
    plan->add_shape(p.m);
    plan->set_dtype(v1::DTYPE_FLOAT64);
    plan->mutable_values()->Assign(r.plan.begin(), r.plan.end());
  }
  if (!r.sparse_plan.values.empty()) {
    v1::SparseMatrix* sparse = out.mutable_sparse_plan();
    sparse->add_shape(p.n);
    sparse->add_shape(p.m);
    sparse->mutable_rows()->Assign(r.sparse_plan.rows.begin(), r.sparse_plan.rows.end());
    sparse->mutable_cols()->Assign(r.sparse_plan.cols.begin(), r.sparse_plan.cols.end());
    sparse->mutable_values()->Assign(r.sparse_plan.values.begin(), r.sparse_plan.values.end());
  }
  out.set_device(device);
  return out;
}


absl::StatusOr<OtWork> ConvertOtProblem(const v1::OtProblem& in, const BlobStore& blobs,
                                         absl::string_view field) {
  OtWork work;
  ot::Problem& p = work.problem;
  absl::Status s = SetCost(in, blobs, field, &p);
  if (!s.ok()) return s;
  s = SetMarginals(in, blobs, field, &p);
  if (!s.ok()) return s;
  switch (in.regularization_case()) {
    case v1::OtProblem::kEta: p.eta = in.eta(); break;
    case v1::OtProblem::kReg:
      if (!(in.reg() > 0) || !std::isfinite(in.reg())) {
        return Invalid(field, "reg: must be positive and finite");
      }
      p.eta = 1.0 / in.reg();
      break;
    case v1::OtProblem::REGULARIZATION_NOT_SET:
      return Invalid(field, "eta: set eta or reg (= 1/eta)");
  }
  s = FromKernel(ot::ValidateProblem(p));
  if (!s.ok()) return Invalid(field, s.message());
  auto options = ToOptions(in, p.n * p.m, field);
  if (!options.ok()) return options.status();
  work.options = *options;
  return work;
}

}  // namespace solverd::server
