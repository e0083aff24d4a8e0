// The CPU SorBackend: colours relax in parallel over threads, the natural
// order one row after another; vector operations are plain loops.
#include <algorithm>
#include <vector>

#include "common/parallel_for.h"
#include "sor/sor_backend.h"
#include "sor/sor_math.h"

namespace solverd::sor::internal {
namespace {

// Rows of sparse work per thread below which a split costs more than it saves.
constexpr int64_t kRowsPerThread = 4096;

class CpuBackend final : public SorBackend {
 public:
  CpuBackend(const CsrMatrix& a, const SweepOrder& order, int threads)
      : n_(a.n), order_(order), threads_(threads) {
    // The natural order is A's own storage order: no copy needed.
    if (order.parallel) ordered_ = RowsInSweepOrder(a, order);
    const CsrMatrix& storage = order.parallel ? ordered_ : a;
    view_ = {storage.row_ptr.data(), storage.col_idx.data(), storage.values.data(),
             order.rows.data()};
    for (auto& v : vectors_) v.assign(a.n, 0.0);
  }

  Status Upload(Vec v, const std::vector<double>& host) override {
    vectors_[v] = host;
    return Status::Ok();
  }
  Status Download(Vec v, std::vector<double>* host) override {
    *host = vectors_[v];
    return Status::Ok();
  }
  Status Zero(Vec v) override {
    std::fill(vectors_[v].begin(), vectors_[v].end(), 0.0);
    return Status::Ok();
  }

  Status Sweep(Vec x, Vec rhs, double omega, bool forward) override {
    const int64_t groups = order_.groups();
    for (int64_t step = 0; step < groups; ++step) {
      const int64_t g = forward ? step : groups - 1 - step;
      RelaxGroup(order_.group_ptr[g], order_.group_ptr[g + 1], x, rhs, omega, forward);
    }
    return Status::Ok();
  }

  Status Residual(Vec x, Vec rhs, Vec out) override {
    const double* xs = vectors_[x].data();
    const double* bs = vectors_[rhs].data();
    double* r = vectors_[out].data();
    Slots([&](int64_t slot) {
      const int32_t i = view_.rows[slot];
      r[i] = bs[i] - RowProduct(view_, slot, xs);
    });
    return Status::Ok();
  }
  Status Multiply(Vec x, Vec out) override {
    const double* xs = vectors_[x].data();
    double* y = vectors_[out].data();
    Slots([&](int64_t slot) { y[view_.rows[slot]] = RowProduct(view_, slot, xs); });
    return Status::Ok();
  }
  Status Dot(Vec u, Vec v, double* out) override {
    const double* us = vectors_[u].data();
    const double* vs = vectors_[v].data();
    double sum = 0;
    for (int32_t i = 0; i < n_; ++i) sum += us[i] * vs[i];
    *out = sum;
    return Status::Ok();
  }
  Status Axpy(double alpha, Vec x, Vec y) override {
    const double* xs = vectors_[x].data();
    double* ys = vectors_[y].data();
    for (int32_t i = 0; i < n_; ++i) ys[i] += alpha * xs[i];
    return Status::Ok();
  }
  Status Xpay(Vec x, double beta, Vec y) override {
    const double* xs = vectors_[x].data();
    double* ys = vectors_[y].data();
    for (int32_t i = 0; i < n_; ++i) ys[i] = xs[i] + beta * ys[i];
    return Status::Ok();
  }

 private:
  template <typename F>
  void Slots(F&& per_slot) {
    ParallelFor(n_, threads_, [&](int64_t begin, int64_t end) {
      for (int64_t slot = begin; slot < end; ++slot) per_slot(slot);
    }, kRowsPerThread);
  }

  void RelaxGroup(int64_t begin, int64_t end, Vec x, Vec rhs, double omega, bool forward) {
    double* xs = vectors_[x].data();
    const double* bs = vectors_[rhs].data();
    auto relax = [&](int64_t slot) { RelaxRow(view_, slot, bs, omega, xs); };
    if (!order_.parallel) {  // natural order: each row reads its predecessors' new values
      if (forward) {
        for (int64_t k = begin; k < end; ++k) relax(k);
      } else {
        for (int64_t k = end - 1; k >= begin; --k) relax(k);
      }
      return;
    }
    ParallelFor(end - begin, threads_, [&](int64_t lo, int64_t hi) {
      for (int64_t k = begin + lo; k < begin + hi; ++k) relax(k);
    }, kRowsPerThread);
  }

  const int32_t n_;
  const SweepOrder& order_;
  CsrMatrix ordered_;  // A in sweep order; empty for the natural order
  OrderedCsrView view_;
  const int threads_;
  std::vector<double> vectors_[kVectors];
};

}  // namespace

std::unique_ptr<SorBackend> MakeCpuBackend(const CsrMatrix& a, const SweepOrder& order,
                                           int threads) {
  return std::make_unique<CpuBackend>(a, order, threads);
}

}  // namespace solverd::sor::internal
