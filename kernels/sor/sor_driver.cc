// The SOR/SSOR and CG iterations, written once over SorBackend, for a batch
// of systems in lockstep: per-system scalars, each system leaving the
// active set when it converges, diverges or runs out of iterations.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

#include "sor/sor_backend.h"

namespace solverd::sor::internal {
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

// The state of a batch solve: results, statuses and which systems are
// still iterating. Every system-wise loop of the iterations goes through it.
class Batch {
 public:
  Batch(SorBackend& be, const Options& options, std::vector<Result>* results,
        std::vector<Status>* statuses)
      : be_(be), options_(options), results_(*results), statuses_(*statuses),
        b_norm_(be.batch(), 0.0) {}

  int size() const { return be_.batch(); }
  bool active(int s) const { return (mask_ >> s) & 1; }
  bool any() const { return mask_ != 0; }
  Result& result(int s) { return results_[s]; }
  double b_norm(int s) const { return b_norm_[s]; }

  // Systems with b = 0 are solved by x = 0 and start inactive.
  Status Start() {
    Scalars bb;
    SOLVERD_RETURN_IF_ERROR(be_.Dot(kB, kB, &bb));
    uint64_t zero_b = 0;
    for (int s = 0; s < size(); ++s) {
      b_norm_[s] = std::sqrt(bb[s]);
      if (bb[s] == 0) zero_b |= uint64_t{1} << s;
    }
    if (zero_b != 0) {
      SOLVERD_RETURN_IF_ERROR(be_.SetActive(zero_b));
      SOLVERD_RETURN_IF_ERROR(be_.Zero(kX));
    }
    return SetMask(All() & ~zero_b);
  }
  // Each active system's relative residual from kR.
  Status UpdateResiduals() {
    SOLVERD_RETURN_IF_ERROR(be_.Dot(kR, kR, &rr_));
    for (int s = 0; s < size(); ++s) {
      if (active(s)) results_[s].relative_residual = std::sqrt(rr_[s]) / b_norm_[s];
    }
    return Status::Ok();
  }
  void CountIteration() {
    ++round_;
    for (int s = 0; s < size(); ++s) results_[s].iterations += active(s);
  }
  // Drops system s from the active set (applied at the next Commit).
  void Finish(int s, Status status = Status::Ok()) {
    next_mask_ &= ~(uint64_t{1} << s);
    statuses_[s] = std::move(status);
  }
  bool Done(int s) const {
    const Result& r = results_[s];
    return r.relative_residual <= options_.tolerance || r.iterations >= options_.max_iterations;
  }
  Status Commit() { return next_mask_ == mask_ ? Status::Ok() : SetMask(next_mask_); }
  void Report(ProgressSink* sink, const SolveClock& clock) const;

 private:
  uint64_t All() const { return size() == 64 ? ~uint64_t{0} : (uint64_t{1} << size()) - 1; }
  Status SetMask(uint64_t mask) {
    mask_ = next_mask_ = mask;
    return mask == 0 ? Status::Ok() : be_.SetActive(mask);
  }

  SorBackend& be_;
  const Options& options_;
  std::vector<Result>& results_;
  std::vector<Status>& statuses_;
  std::vector<double> b_norm_;
  Scalars rr_;  // reused: small systems iterate in microseconds
  uint64_t mask_ = 0, next_mask_ = 0;
  int64_t round_ = 0;
};

// Progress of the slowest active system.
void Batch::Report(ProgressSink* sink, const SolveClock& clock) const {
  if (sink == nullptr || round_ % options_.progress_every != 0) return;
  double worst = 0;
  for (int s = 0; s < size(); ++s) {
    if (active(s)) worst = std::max(worst, results_[s].relative_residual);
  }
  Progress p;
  p.iteration = round_;
  p.residual = p.objective = worst;
  p.elapsed_seconds = clock.elapsed();
  // Convergence is roughly linear in log(residual): the share of the
  // orders of magnitude already gained.
  const double gained = -std::log10(std::max(worst, 1e-300));
  p.fraction = std::clamp(gained / -std::log10(options_.tolerance), 0.0, 1.0);
  p.stage = StageName(options_.method);
  sink->Report(p);
}

Status ApplyPreconditioner(SorBackend& be, const Options& options, const Scalars& omega) {
  SOLVERD_RETURN_IF_ERROR(be.Zero(kZ));
  if (options.method == Method::kCg) return be.Axpy(Scalars(be.batch(), 1.0), kR, kZ);
  // One SSOR iteration from zero applies M^{-1} = omega (2 - omega)
  // (D + omega U)^{-1} D (D + omega L)^{-1} exactly.
  SOLVERD_RETURN_IF_ERROR(be.Sweep(kZ, kR, omega, /*forward=*/true));
  return be.Sweep(kZ, kR, omega, /*forward=*/false);
}

Status RunStationary(SorBackend& be, Batch& batch, const Options& options, const Scalars& omega,
                     ProgressSink* sink, const CancelToken* cancel) {
  const SolveClock clock(options.time_limit_seconds);
  SOLVERD_RETURN_IF_ERROR(be.Residual(kX, kB, kR));
  SOLVERD_RETURN_IF_ERROR(batch.UpdateResiduals());
  Scalars initial(batch.size());
  for (int s = 0; s < batch.size(); ++s) {
    initial[s] = batch.result(s).relative_residual;
    if (batch.active(s) && batch.Done(s)) batch.Finish(s);
  }
  SOLVERD_RETURN_IF_ERROR(batch.Commit());
  while (batch.any()) {
    SOLVERD_RETURN_IF_ERROR(CheckCancel(cancel));
    if (clock.expired()) break;
    SOLVERD_RETURN_IF_ERROR(be.Sweep(kX, kB, omega, /*forward=*/true));
    if (options.method == Method::kSsor) {
      SOLVERD_RETURN_IF_ERROR(be.Sweep(kX, kB, omega, /*forward=*/false));
    }
    batch.CountIteration();
    SOLVERD_RETURN_IF_ERROR(be.Residual(kX, kB, kR));
    SOLVERD_RETURN_IF_ERROR(batch.UpdateResiduals());
    batch.Report(sink, clock);
    for (int s = 0; s < batch.size(); ++s) {
      const double r = batch.result(s).relative_residual;
      const bool diverged = !(r <= kDivergenceFactor * std::max(initial[s], 1.0));
      if (batch.active(s) && (batch.Done(s) || diverged)) batch.Finish(s);
    }
    SOLVERD_RETURN_IF_ERROR(batch.Commit());
  }
  return Status::Ok();
}

Status NotPositiveDefinite(int64_t iteration) {
  return InvalidArgument("a: not positive definite (CG found a direction of non-positive "
                         "curvature at iteration " + std::to_string(iteration) + ")");
}

// Drops the systems whose `curvature` is not positive: A is not SPD there.
Status DropIndefinite(Batch& batch, const Scalars& curvature) {
  for (int s = 0; s < batch.size(); ++s) {
    if (batch.active(s) && !(curvature[s] > 0)) {
      batch.Finish(s, NotPositiveDefinite(batch.result(s).iterations));
    }
  }
  return batch.Commit();
}

Status RunConjugateGradient(SorBackend& be, Batch& batch, const Options& options,
                            const Scalars& omega, ProgressSink* sink,
                            const CancelToken* cancel) {
  const SolveClock clock(options.time_limit_seconds);
  const int k = batch.size();
  SOLVERD_RETURN_IF_ERROR(be.Residual(kX, kB, kR));
  SOLVERD_RETURN_IF_ERROR(batch.UpdateResiduals());
  for (int s = 0; s < k; ++s) {
    if (batch.active(s) && batch.Done(s)) batch.Finish(s);
  }
  SOLVERD_RETURN_IF_ERROR(batch.Commit());
  if (!batch.any()) return Status::Ok();
  SOLVERD_RETURN_IF_ERROR(ApplyPreconditioner(be, options, omega));
  SOLVERD_RETURN_IF_ERROR(be.Zero(kP));
  SOLVERD_RETURN_IF_ERROR(be.Axpy(Scalars(k, 1.0), kZ, kP));
  Scalars rz, pq, alpha(k), minus_alpha(k), rz_next, beta(k);
  SOLVERD_RETURN_IF_ERROR(be.Dot(kR, kZ, &rz));
  while (batch.any()) {
    SOLVERD_RETURN_IF_ERROR(CheckCancel(cancel));
    if (clock.expired()) break;
    SOLVERD_RETURN_IF_ERROR(DropIndefinite(batch, rz));
    SOLVERD_RETURN_IF_ERROR(be.Multiply(kP, kQ));
    SOLVERD_RETURN_IF_ERROR(be.Dot(kP, kQ, &pq));
    SOLVERD_RETURN_IF_ERROR(DropIndefinite(batch, pq));
    if (!batch.any()) break;
    for (int s = 0; s < k; ++s) {
      alpha[s] = batch.active(s) ? rz[s] / pq[s] : 0;
      minus_alpha[s] = -alpha[s];
    }
    SOLVERD_RETURN_IF_ERROR(be.Axpy(alpha, kP, kX));
    SOLVERD_RETURN_IF_ERROR(be.Axpy(minus_alpha, kQ, kR));
    batch.CountIteration();
    SOLVERD_RETURN_IF_ERROR(batch.UpdateResiduals());
    batch.Report(sink, clock);
    for (int s = 0; s < k; ++s) {
      if (batch.active(s) && batch.Done(s)) batch.Finish(s);
    }
    SOLVERD_RETURN_IF_ERROR(batch.Commit());
    if (!batch.any()) break;
    SOLVERD_RETURN_IF_ERROR(ApplyPreconditioner(be, options, omega));
    SOLVERD_RETURN_IF_ERROR(be.Dot(kR, kZ, &rz_next));
    for (int s = 0; s < k; ++s) beta[s] = batch.active(s) ? rz_next[s] / rz[s] : 0;
    SOLVERD_RETURN_IF_ERROR(be.Xpay(kZ, beta, kP));
    rz = rz_next;
  }
  return Status::Ok();
}

}  // namespace

Status RunSolve(SorBackend& be, const Options& options, const Scalars& omega,
                ProgressSink* sink, const CancelToken* cancel, std::vector<Result>* results,
                std::vector<Status>* statuses) {
  const SolveClock clock(0);
  results->assign(be.batch(), Result());
  statuses->assign(be.batch(), Status::Ok());
  Batch batch(be, options, results, statuses);
  SOLVERD_RETURN_IF_ERROR(batch.Start());
  Status status;
  if (options.method == Method::kSsorCg || options.method == Method::kCg) {
    status = RunConjugateGradient(be, batch, options, omega, sink, cancel);
  } else {
    status = RunStationary(be, batch, options, omega, sink, cancel);
  }
  for (int s = 0; s < be.batch(); ++s) {
    Result& r = (*results)[s];
    r.converged = status.ok() && (*statuses)[s].ok() && r.relative_residual <= options.tolerance;
    r.seconds = clock.elapsed();
    SOLVERD_RETURN_IF_ERROR(be.Download(kX, s, &r.x));
  }
  return status;
}

}  // namespace solverd::sor::internal
