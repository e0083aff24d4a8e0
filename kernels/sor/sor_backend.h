// SorBackend: the vector operations the SOR/SSOR and CG drivers are written
// in, implemented once per device (sor_cpu.cc, sor_cuda.cu), so the
// iteration logic exists once and both backends compute the same function.
// A backend holds a batch of systems that share one sparsity pattern and
// sweep order, each with its own values and kVectors work vectors of length
// n, so one launch serves the whole batch (at most kMaxBatch systems).
// Not thread-safe.
#ifndef SOLVERD_KERNELS_SOR_SOR_BACKEND_H_
#define SOLVERD_KERNELS_SOR_SOR_BACKEND_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "sor/sor.h"

namespace solverd::sor::internal {

enum Vec { kX, kB, kR, kZ, kP, kQ, kVectors };

// Per-system scalars (omega, CG's alpha and beta), one per system.
using Scalars = std::vector<double>;

class SorBackend {
 public:
  virtual ~SorBackend() = default;
  virtual int batch() const = 0;
  // The systems later operations touch (bit s: system s); the others keep
  // their vectors. All systems are active at first.
  virtual Status SetActive(uint64_t mask) = 0;
  virtual Status Upload(Vec v, int system, const std::vector<double>& host) = 0;
  virtual Status Download(Vec v, int system, std::vector<double>* host) = 0;
  virtual Status Zero(Vec v) = 0;
  // One SOR sweep on A x = rhs: every row relaxed once, groups in sweep
  // order (forward) or reversed (backward).
  virtual Status Sweep(Vec x, Vec rhs, const Scalars& omega, bool forward) = 0;
  // out = rhs - A x.
  virtual Status Residual(Vec x, Vec rhs, Vec out) = 0;
  // out = A x.
  virtual Status Multiply(Vec x, Vec out) = 0;
  // out[s] = u . v of system s; 0 for inactive systems.
  virtual Status Dot(Vec u, Vec v, Scalars* out) = 0;
  // y += alpha x.
  virtual Status Axpy(const Scalars& alpha, Vec x, Vec y) = 0;
  // y = x + beta y.
  virtual Status Xpay(Vec x, const Scalars& beta, Vec y) = 0;
};

// `systems` share one pattern (SamePattern), that `order` was built for.
std::unique_ptr<SorBackend> MakeCpuBackend(const std::vector<const CsrMatrix*>& systems,
                                           const SweepOrder& order, int threads);
#ifdef SOLVERD_HAVE_CUDA
Status MakeCudaBackend(const Device& device, StreamHandle stream,
                       const std::vector<const CsrMatrix*>& systems, const SweepOrder& order,
                       std::unique_ptr<SorBackend>* backend);
#endif

// The iteration itself, for every system of the backend in lockstep (kB and
// kX hold each system's b and x0); system s uses omega[s]. statuses[s] says
// how system s ended (e.g. A not positive definite); the returned status
// stops the whole batch (cancelled, device error).
Status RunSolve(SorBackend& backend, const Options& options, const Scalars& omega,
                ProgressSink* sink, const CancelToken* cancel, std::vector<Result>* results,
                std::vector<Status>* statuses);

}  // namespace solverd::sor::internal

#endif  // SOLVERD_KERNELS_SOR_SOR_BACKEND_H_
