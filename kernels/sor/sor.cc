// Solve and SolveBatch: input checks, the backend for the device, then the
// shared iteration (sor_driver.cc).
#include "sor/sor.h"

#include <string>

#include "sor/sor_backend.h"

namespace solverd::sor {
namespace {

Status CheckLength(const char* field, size_t size, int64_t n, int s) {
  if (size == static_cast<size_t>(n)) return Status::Ok();
  return InvalidArgument(std::string(field) + ": system " + std::to_string(s) + " has " +
                         std::to_string(size) + " entries, want " + std::to_string(n));
}

Status CheckBatch(const std::vector<BatchSystem>& systems, const SweepOrder& order) {
  if (systems.empty() || systems.size() > static_cast<size_t>(kMaxBatch)) {
    return InvalidArgument("systems: a batch holds 1 to " + std::to_string(kMaxBatch) +
                           " systems, got " + std::to_string(systems.size()));
  }
  const CsrMatrix& first = *systems[0].a;
  if (static_cast<int64_t>(order.rows.size()) != first.n) {
    return InvalidArgument("order: built for another matrix");
  }
  for (size_t s = 0; s < systems.size(); ++s) {
    const BatchSystem& sys = systems[s];
    if (s > 0 && !SamePattern(first, *sys.a)) {
      return InvalidArgument("a: system " + std::to_string(s) +
                             " has another sparsity pattern than system 0");
    }
    SOLVERD_RETURN_IF_ERROR(CheckLength("b", sys.b->size(), first.n, static_cast<int>(s)));
    if (sys.x0 != nullptr && !sys.x0->empty()) {
      SOLVERD_RETURN_IF_ERROR(CheckLength("x0", sys.x0->size(), first.n, static_cast<int>(s)));
    }
  }
  return Status::Ok();
}

Status MakeBackend(const Device& device, StreamHandle stream,
                   const std::vector<const CsrMatrix*>& matrices, const SweepOrder& order,
                   const Options& options, std::unique_ptr<internal::SorBackend>* backend) {
  if (!device.is_cuda()) {
    *backend = internal::MakeCpuBackend(matrices, order, options.threads);
    return Status::Ok();
  }
#ifdef SOLVERD_HAVE_CUDA
  return internal::MakeCudaBackend(device, stream, matrices, order, backend);
#else
  (void)stream;
  return FailedPrecondition("this build has no CUDA backend");
#endif
}

}  // namespace

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

Status SolveBatch(const Device& device, StreamHandle stream,
                  const std::vector<BatchSystem>& systems, const SweepOrder& order,
                  const Options& options, ProgressSink* sink, const CancelToken* cancel,
                  std::vector<Result>* results, std::vector<Status>* statuses) {
  SOLVERD_RETURN_IF_ERROR(CheckBatch(systems, order));
  std::vector<const CsrMatrix*> matrices;
  internal::Scalars omega;
  for (const BatchSystem& s : systems) {
    matrices.push_back(s.a);
    omega.push_back(s.omega);
  }
  std::unique_ptr<internal::SorBackend> backend;
  SOLVERD_RETURN_IF_ERROR(MakeBackend(device, stream, matrices, order, options, &backend));
  const size_t first_n = static_cast<size_t>(systems[0].a->n);
  for (int s = 0; s < static_cast<int>(systems.size()); ++s) {
    SOLVERD_RETURN_IF_ERROR(backend->Upload(internal::kB, s, *systems[s].b));
    const std::vector<double>* x0 = systems[s].x0;
    if (x0 != nullptr && !x0->empty()) {
      SOLVERD_RETURN_IF_ERROR(backend->Upload(internal::kX, s, *x0));
    } else {
      SOLVERD_RETURN_IF_ERROR(backend->Upload(internal::kX, s, std::vector<double>(first_n, 0.0)));
    }
  }
  return internal::RunSolve(*backend, options, omega, sink, cancel, results, statuses);
}

Status Solve(const Device& device, StreamHandle stream, const CsrMatrix& a,
             const SweepOrder& order, const std::vector<double>& b,
             const std::vector<double>& x0, const Options& options, ProgressSink* sink,
             const CancelToken* cancel, Result* result) {
  std::vector<Result> results;
  std::vector<Status> statuses;
  Status s = SolveBatch(device, stream, {BatchSystem{&a, &b, &x0, options.omega}}, order,
                        options, sink, cancel, &results, &statuses);
  if (!results.empty()) *result = std::move(results[0]);
  if (!s.ok()) return s;
  return statuses[0];
}

int64_t EstimateBytes(const CsrMatrix& a, int batch) {
  const int64_t vectors = static_cast<int64_t>(internal::kVectors) * a.n * sizeof(double);
  const int64_t values = a.nnz() * static_cast<int64_t>(sizeof(double));
  const int64_t pattern = (a.n + 1) * sizeof(int64_t) + a.nnz() * sizeof(int32_t);
  return batch * (vectors + values) + pattern + 2 * a.n * sizeof(int32_t);  // + the sweep order
}

}  // namespace solverd::sor
