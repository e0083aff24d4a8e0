// SorBackend: the vector operations the SOR/SSOR and CG drivers are written
// in, implemented once per device (sor_cpu.cc, sor_cuda.cu), so the
// iteration logic exists once and both backends compute the same function.
// A backend holds one matrix, its sweep order and kVectors work vectors of
// length n, on its device. Not thread-safe.
#ifndef SOLVERD_KERNELS_SOR_SOR_BACKEND_H_
#define SOLVERD_KERNELS_SOR_SOR_BACKEND_H_

#include <memory>
#include <vector>

#include "sor/sor.h"

namespace solverd::sor::internal {

enum Vec { kX, kB, kR, kZ, kP, kQ, kVectors };

class SorBackend {
 public:
  virtual ~SorBackend() = default;
  virtual Status Upload(Vec v, const std::vector<double>& host) = 0;
  virtual Status Download(Vec v, std::vector<double>* host) = 0;
  virtual Status Zero(Vec v) = 0;
  // One SOR sweep on A x = rhs: every row relaxed once, groups in sweep
  // order (forward) or reversed (backward).
  virtual Status Sweep(Vec x, Vec rhs, double omega, bool forward) = 0;
  // out = rhs - A x.
  virtual Status Residual(Vec x, Vec rhs, Vec out) = 0;
  // out = A x.
  virtual Status Multiply(Vec x, Vec out) = 0;
  virtual Status Dot(Vec u, Vec v, double* out) = 0;
  // y += alpha x.
  virtual Status Axpy(double alpha, Vec x, Vec y) = 0;
  // y = x + beta y.
  virtual Status Xpay(Vec x, double beta, Vec y) = 0;
};

std::unique_ptr<SorBackend> MakeCpuBackend(const CsrMatrix& a, const SweepOrder& order,
                                           int threads);
#ifdef SOLVERD_HAVE_CUDA
Status MakeCudaBackend(const Device& device, StreamHandle stream, const CsrMatrix& a,
                       const SweepOrder& order, std::unique_ptr<SorBackend>* backend);
#endif

// The iteration itself, on any backend whose kB (and kX) hold b (and x0).
Status RunSolve(SorBackend& backend, const Options& options, ProgressSink* sink,
                const CancelToken* cancel, Result* result);

}  // namespace solverd::sor::internal

#endif  // SOLVERD_KERNELS_SOR_SOR_BACKEND_H_
