// The SOR/SSOR and CG iterations, written once over SorBackend.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

#include "sor/sor_backend.h"

namespace solverd::sor {
namespace internal {
namespace {

// A stationary iteration whose residual grew this much has diverged
// (omega outside the convergent range for this A); stop before overflow.
constexpr double kDivergenceFactor = 1e8;

class SolveClock {
 public:
  explicit SolveClock(double limit_seconds) : limit_(limit_seconds) {}
  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  bool expired() const { return limit_ > 0 && elapsed() > limit_; }

 private:
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  const double limit_;
};

const char* StageName(Method m) {
  switch (m) {
    case Method::kSor: return "sor";
    case Method::kSsor: return "ssor";
    case Method::kSsorCg: return "ssor-cg";
    case Method::kCg: return "cg";
  }
  return "sor";
}

void Report(ProgressSink* sink, const Options& options, const Result& r, const SolveClock& clock) {
  if (sink == nullptr || r.iterations % options.progress_every != 0) return;
  Progress p;
  p.iteration = r.iterations;
  p.residual = r.relative_residual;
  p.objective = r.relative_residual;
  p.elapsed_seconds = clock.elapsed();
  // Convergence is roughly linear in log(residual): the share of the
  // orders of magnitude already gained.
  const double gained = -std::log10(std::max(r.relative_residual, 1e-300));
  p.fraction = std::clamp(gained / -std::log10(options.tolerance), 0.0, 1.0);
  p.stage = StageName(options.method);
  sink->Report(p);
}

Status RelativeResidual(SorBackend& be, double b_norm, double* out) {
  double rr = 0;
  SOLVERD_RETURN_IF_ERROR(be.Dot(kR, kR, &rr));
  *out = std::sqrt(rr) / b_norm;
  return Status::Ok();
}

Status ApplyPreconditioner(SorBackend& be, const Options& options) {
  SOLVERD_RETURN_IF_ERROR(be.Zero(kZ));
  if (options.method == Method::kCg) return be.Axpy(1.0, kR, kZ);
  // One SSOR iteration from zero applies M^{-1} = omega (2 - omega)
  // (D + omega U)^{-1} D (D + omega L)^{-1} exactly.
  SOLVERD_RETURN_IF_ERROR(be.Sweep(kZ, kR, options.omega, /*forward=*/true));
  return be.Sweep(kZ, kR, options.omega, /*forward=*/false);
}

Status RunStationary(SorBackend& be, const Options& options, double b_norm, ProgressSink* sink,
                     const CancelToken* cancel, Result* r) {
  const SolveClock clock(options.time_limit_seconds);
  SOLVERD_RETURN_IF_ERROR(be.Residual(kX, kB, kR));
  SOLVERD_RETURN_IF_ERROR(RelativeResidual(be, b_norm, &r->relative_residual));
  const double initial = r->relative_residual;
  while (r->relative_residual > options.tolerance && r->iterations < options.max_iterations) {
    SOLVERD_RETURN_IF_ERROR(CheckCancel(cancel));
    if (clock.expired()) break;
    SOLVERD_RETURN_IF_ERROR(be.Sweep(kX, kB, options.omega, /*forward=*/true));
    if (options.method == Method::kSsor) {
      SOLVERD_RETURN_IF_ERROR(be.Sweep(kX, kB, options.omega, /*forward=*/false));
    }
    ++r->iterations;
    SOLVERD_RETURN_IF_ERROR(be.Residual(kX, kB, kR));
    SOLVERD_RETURN_IF_ERROR(RelativeResidual(be, b_norm, &r->relative_residual));
    Report(sink, options, *r, clock);
    if (!(r->relative_residual <= kDivergenceFactor * std::max(initial, 1.0))) break;
  }
  return Status::Ok();
}

Status NotPositiveDefinite(int64_t iteration) {
  return InvalidArgument("a: not positive definite (CG found a direction of non-positive "
                         "curvature at iteration " + std::to_string(iteration) + ")");
}

Status RunConjugateGradient(SorBackend& be, const Options& options, double b_norm,
                            ProgressSink* sink, const CancelToken* cancel, Result* r) {
  const SolveClock clock(options.time_limit_seconds);
  SOLVERD_RETURN_IF_ERROR(be.Residual(kX, kB, kR));
  SOLVERD_RETURN_IF_ERROR(RelativeResidual(be, b_norm, &r->relative_residual));
  if (r->relative_residual <= options.tolerance) return Status::Ok();
  SOLVERD_RETURN_IF_ERROR(ApplyPreconditioner(be, options));
  SOLVERD_RETURN_IF_ERROR(be.Zero(kP));
  SOLVERD_RETURN_IF_ERROR(be.Axpy(1.0, kZ, kP));
  double rz = 0;
  SOLVERD_RETURN_IF_ERROR(be.Dot(kR, kZ, &rz));
  while (r->iterations < options.max_iterations) {
    SOLVERD_RETURN_IF_ERROR(CheckCancel(cancel));
    if (clock.expired()) break;
    if (!(rz > 0)) return NotPositiveDefinite(r->iterations);
    double pq = 0;
    SOLVERD_RETURN_IF_ERROR(be.Multiply(kP, kQ));
    SOLVERD_RETURN_IF_ERROR(be.Dot(kP, kQ, &pq));
    if (!(pq > 0)) return NotPositiveDefinite(r->iterations);
    const double alpha = rz / pq;
    SOLVERD_RETURN_IF_ERROR(be.Axpy(alpha, kP, kX));
    SOLVERD_RETURN_IF_ERROR(be.Axpy(-alpha, kQ, kR));
    ++r->iterations;
    SOLVERD_RETURN_IF_ERROR(RelativeResidual(be, b_norm, &r->relative_residual));
    Report(sink, options, *r, clock);
    if (r->relative_residual <= options.tolerance) break;
    SOLVERD_RETURN_IF_ERROR(ApplyPreconditioner(be, options));
    double rz_next = 0;
    SOLVERD_RETURN_IF_ERROR(be.Dot(kR, kZ, &rz_next));
    SOLVERD_RETURN_IF_ERROR(be.Xpay(kZ, rz_next / rz, kP));
    rz = rz_next;
  }
  return Status::Ok();
}

}  // namespace

Status RunSolve(SorBackend& be, const Options& options, ProgressSink* sink,
                const CancelToken* cancel, Result* r) {
  const SolveClock clock(0);
  *r = Result();
  double bb = 0;
  SOLVERD_RETURN_IF_ERROR(be.Dot(kB, kB, &bb));
  Status status;
  if (bb == 0) {  // x = 0 solves it exactly
    SOLVERD_RETURN_IF_ERROR(be.Zero(kX));
  } else if (options.method == Method::kSsorCg || options.method == Method::kCg) {
    status = RunConjugateGradient(be, options, std::sqrt(bb), sink, cancel, r);
  } else {
    status = RunStationary(be, options, std::sqrt(bb), sink, cancel, r);
  }
  r->converged = status.ok() && r->relative_residual <= options.tolerance;
  r->seconds = clock.elapsed();
  SOLVERD_RETURN_IF_ERROR(be.Download(kX, &r->x));
  return status;
}

}  // namespace internal

Status ValidateOptions(const Device& device, const CsrMatrix& a, const Options& options) {
  if (!(options.omega > 0 && options.omega < 2) && options.method != Method::kCg) {
    return InvalidArgument("omega: must lie in (0, 2), got " + std::to_string(options.omega));
  }
  if (!(options.tolerance > 0 && options.tolerance < 1)) {
    return InvalidArgument("tolerance: must lie in (0, 1)");
  }
  if (options.max_iterations <= 0) return InvalidArgument("max_iterations: must be positive");
  if (device.is_cuda() && options.ordering == Ordering::kNatural) {
    return InvalidArgument("ordering: natural ordering is sequential and runs on the CPU only");
  }
  const bool cg = options.method == Method::kSsorCg || options.method == Method::kCg;
  if (cg && !IsSymmetric(a)) {
    return InvalidArgument("a: not symmetric; CG needs a symmetric positive definite matrix "
                           "(use method SOR or SSOR)");
  }
  return Status::Ok();
}

Status Solve(const Device& device, StreamHandle stream, const CsrMatrix& a,
             const SweepOrder& order, const std::vector<double>& b,
             const std::vector<double>& x0, const Options& options, ProgressSink* sink,
             const CancelToken* cancel, Result* result) {
  if (b.size() != static_cast<size_t>(a.n)) {
    return InvalidArgument("b: has " + std::to_string(b.size()) + " entries, want " +
                           std::to_string(a.n));
  }
  if (!x0.empty() && x0.size() != static_cast<size_t>(a.n)) {
    return InvalidArgument("x0: has " + std::to_string(x0.size()) + " entries, want " +
                           std::to_string(a.n));
  }
  if (static_cast<int64_t>(order.rows.size()) != a.n) {
    return InvalidArgument("order: built for another matrix");
  }
  std::unique_ptr<internal::SorBackend> backend;
  if (device.is_cuda()) {
#ifdef SOLVERD_HAVE_CUDA
    SOLVERD_RETURN_IF_ERROR(internal::MakeCudaBackend(device, stream, a, order, &backend));
#else
    (void)stream;
    return FailedPrecondition("this build has no CUDA backend");
#endif
  } else {
    backend = internal::MakeCpuBackend(a, order, options.threads);
  }
  SOLVERD_RETURN_IF_ERROR(backend->Upload(internal::kB, b));
  if (x0.empty()) {
    SOLVERD_RETURN_IF_ERROR(backend->Zero(internal::kX));
  } else {
    SOLVERD_RETURN_IF_ERROR(backend->Upload(internal::kX, x0));
  }
  return internal::RunSolve(*backend, options, sink, cancel, result);
}

int64_t EstimateBytes(const CsrMatrix& a) {
  const int64_t vectors = static_cast<int64_t>(internal::kVectors) * a.n * sizeof(double);
  const int64_t matrix = (a.n + 1) * sizeof(int64_t) + a.nnz() * (sizeof(int32_t) + sizeof(double));
  return vectors + matrix + 2 * a.n * sizeof(int32_t);  // + the sweep order
}

}  // namespace solverd::sor
