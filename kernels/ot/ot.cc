// Validation and backend dispatch for the ot family.
#include "ot/ot.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/check_finite.h"
#include "ot/gibbs_kernel.h"
#include "ot/ot_backend.h"
#include "ot/overrelaxation.h"

namespace solverd::ot {
namespace {

Status CheckMarginal(const std::vector<double>& v, int64_t size, const char* field,
                     double* mass) {
  if (static_cast<int64_t>(v.size()) != size) {
    return InvalidArgument(std::string(field) + ": has " + std::to_string(v.size()) +
                           " entries, expected " + std::to_string(size));
  }
  SOLVERD_RETURN_IF_ERROR(CheckFinite(v, field));
  *mass = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] < 0) {
      return InvalidArgument(std::string(field) + ": entry " + std::to_string(i) +
                             " is negative");
    }
    *mass += v[i];
  }
  if (*mass <= 0) return InvalidArgument(std::string(field) + ": total mass is zero");
  return Status::Ok();
}

// Past these, potentials (~ C and ~ log(mass) / eta) or the exponents
// eta (x + y - C) leave double range and the answer would be Inf or NaN.
constexpr double kMaxEtaTimesCost = 1e200;
constexpr double kMinEta = 1e-200;

// The largest |C_ij|: of the matrix, or a bound from the points' extent.
double LargestCost(const Problem& p) {
  double largest = 0;
  if (!p.has_points()) {
    for (double c : p.cost) largest = std::max(largest, std::fabs(c));
    return largest;
  }
  for (double v : p.x_points) largest = std::max(largest, std::fabs(v));
  for (double v : p.y_points) largest = std::max(largest, std::fabs(v));
  const double span = 2 * largest;  // per coordinate, at most
  return static_cast<double>(p.dim) * (p.cost_power == 1 ? span : span * span);
}

Status CheckScale(const Problem& p) {
  if (p.eta < kMinEta) {
    return InvalidArgument("eta: " + std::to_string(p.eta) + " is below " +
                           std::to_string(kMinEta) + " (reg above 1e200)");
  }
  const double scaled = p.eta * LargestCost(p);
  if (!(scaled <= kMaxEtaTimesCost)) {
    return InvalidArgument(std::string(p.has_points() ? "points" : "cost") +
                           ": eta * largest cost is " + std::to_string(scaled) +
                           ", past the 1e200 double precision allows; rescale the " +
                           (p.has_points() ? "points" : "costs") + " or raise reg");
  }
  return Status::Ok();
}

}  // namespace

Status ValidateProblem(const Problem& p) {
  if (p.n <= 0) return InvalidArgument("n: must be positive");
  if (p.m <= 0) return InvalidArgument("m: must be positive");
  if (p.has_points()) {
    if (static_cast<int64_t>(p.x_points.size()) != p.n * p.dim) {
      return InvalidArgument("points.x: size does not match n x dim");
    }
    if (static_cast<int64_t>(p.y_points.size()) != p.m * p.dim) {
      return InvalidArgument("points.y: size does not match m x dim");
    }
    if (p.cost_power != 1 && p.cost_power != 2) {
      return InvalidArgument("points.p: must be 1 or 2");
    }
    SOLVERD_RETURN_IF_ERROR(CheckFinite(p.x_points, "points.x"));
    SOLVERD_RETURN_IF_ERROR(CheckFinite(p.y_points, "points.y"));
  } else {
    if (static_cast<int64_t>(p.cost.size()) != p.n * p.m) {
      return InvalidArgument("cost: has " + std::to_string(p.cost.size()) +
                             " entries, expected n x m = " + std::to_string(p.n * p.m));
    }
    SOLVERD_RETURN_IF_ERROR(CheckFinite(p.cost, "cost"));
  }
  double mass_a = 0, mass_b = 0;
  SOLVERD_RETURN_IF_ERROR(CheckMarginal(p.a, p.n, "a", &mass_a));
  SOLVERD_RETURN_IF_ERROR(CheckMarginal(p.b, p.m, "b", &mass_b));
  if (std::fabs(mass_a - mass_b) > 1e-6 * std::max(mass_a, mass_b)) {
    return InvalidArgument("b: total mass " + std::to_string(mass_b) +
                           " differs from the mass of a, " + std::to_string(mass_a));
  }
  if (!(p.eta > 0) || !std::isfinite(p.eta)) {
    return InvalidArgument("eta: must be positive and finite");
  }
  return CheckScale(p);
}

Status ValidateOptions(const Options& o) {
  if (!(o.tolerance >= 0) || !std::isfinite(o.tolerance)) {
    return InvalidArgument("tolerance: must be non-negative and finite");
  }
  if (o.max_iterations < 0) return InvalidArgument("max_iterations: must be non-negative");
  if (o.check_every < 0) return InvalidArgument("check_every: must be non-negative");
  if (!(o.sparse_plan_threshold >= 0) || !std::isfinite(o.sparse_plan_threshold)) {
    return InvalidArgument("sparse_plan_threshold: must be non-negative and finite");
  }
  if (!(o.overrelaxation == 0 ||
        (o.overrelaxation >= 1 && o.overrelaxation <= internal::kMaxOmega))) {
    return InvalidArgument("overrelaxation: must be 0 (tuned) or in [1, 1.95]");
  }
  if (o.sns_sinkhorn_steps < 0) return InvalidArgument("sns_sinkhorn_steps: must be non-negative");
  if (!(o.sparsity >= 0 && o.sparsity <= 1)) return InvalidArgument("sparsity: must be in [0, 1]");
  if (o.cg_max_iterations < 1) return InvalidArgument("cg_max_iterations: must be positive");
  if (!(o.time_limit_seconds >= 0)) {
    return InvalidArgument("time_limit: must be non-negative");
  }
  return Status::Ok();
}

int64_t EstimateBytes(const Problem& p, const Options& o) {
  int64_t entries = p.n * p.m;
  int64_t bytes = entries * 8 + (p.n + p.m) * 8 * 4;
  // The CPU backend's cached kernel; counted for every device, since the
  // scheduler asks before it knows which one the job will get, and in
  // double precision, which Newton steps may turn a single one into.
  if (internal::GibbsKernel::Fits(p.n, p.m)) bytes += entries * 8;
  // The Newton stage's sparse plan (SNS, and auto when it moves on): the
  // mass rule may keep every entry of a smooth plan (30% on bench/ot's
  // point clouds, n = 5000: 210 MB). The CPU backend holds each kept entry
  // by rows and by columns, 24 bytes, in buffers grown with up to half
  // again as headroom; CUDA's is 16 bytes an entry. Where the whole plan
  // serves instead, the CPU keeps a single copy of the kernel, 4 bytes.
  if (o.method != Method::kSinkhorn) bytes += entries * 40;
  if (o.want_plan) bytes += entries * 8;
  if (o.sparse_plan_threshold > 0) bytes += std::min(entries, kMaxSparsePlanEntries) * 24;
  return bytes;
}

Status Solve(const Device& device, StreamHandle stream, const Problem& problem,
             const Options& options, ProgressSink* sink,
             const CancelToken* cancel, Result* result) {
  SOLVERD_RETURN_IF_ERROR(ValidateOptions(options));
  if (device.is_cuda()) {
#ifdef SOLVERD_HAVE_CUDA
    return internal::SolveCuda(device, stream, problem, options, sink, cancel, result);
#else
    (void)stream;
    return FailedPrecondition("device " + device.ToString() +
                              ": solverd was built without CUDA");
#endif
  }
  return internal::SolveCpu(problem, options, sink, cancel, result);
}

}  // namespace solverd::ot
