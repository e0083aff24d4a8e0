// The CPU SorBackend: colours relax in parallel over threads (and over the
// systems of a batch), the natural order one row after another; vector
// operations are plain loops.
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
  CpuBackend(const std::vector<const CsrMatrix*>& systems, const SweepOrder& order, int threads)
      : n_(systems[0]->n), order_(order), threads_(threads) {
    // The natural order is A's own storage order: no copy needed. Otherwise
    // the shared pattern is reordered once, each system's values apart.
    const CsrMatrix& first = *systems[0];
    if (order.parallel) ordered_ = RowsInSweepOrder(first, order);
    const CsrMatrix& pattern = order.parallel ? ordered_ : first;
    ordered_values_.reserve(systems.size());  // views_ point into it
    for (size_t s = 0; s < systems.size(); ++s) {
      const double* values = systems[s]->values.data();
      if (order.parallel && s == 0) values = ordered_.values.data();
      if (order.parallel && s > 0) {
        ordered_values_.push_back(ValuesInSweepOrder(*systems[s], order));
        values = ordered_values_.back().data();
      }
      views_.push_back({pattern.row_ptr.data(), pattern.col_idx.data(), values, order.rows.data()});
    }
    for (auto& v : vectors_) v.assign(static_cast<size_t>(batch()) * n_, 0.0);
    active_.assign(batch(), 1);
  }

  int batch() const override { return static_cast<int>(views_.size()); }
  Status SetActive(uint64_t mask) override {
    for (int s = 0; s < batch(); ++s) active_[s] = (mask >> s) & 1;
    return Status::Ok();
  }
  Status Upload(Vec v, int s, const std::vector<double>& host) override {
    std::copy(host.begin(), host.end(), Of(v, s));
    return Status::Ok();
  }
  Status Download(Vec v, int s, std::vector<double>* host) override {
    host->assign(Of(v, s), Of(v, s) + n_);
    return Status::Ok();
  }
  Status Zero(Vec v) override {
    return Each([&](int s) { std::fill(Of(v, s), Of(v, s) + n_, 0.0); });
  }

  Status Sweep(Vec x, Vec rhs, const Scalars& omega, bool forward) override {
    const int64_t groups = order_.groups();
    for (int64_t step = 0; step < groups; ++step) {
      const int64_t g = forward ? step : groups - 1 - step;
      RelaxGroup(order_.group_ptr[g], order_.group_ptr[g + 1], x, rhs, omega, forward);
    }
    return Status::Ok();
  }
  Status Residual(Vec x, Vec rhs, Vec out) override {
    Slots(0, n_, [&](int s, int64_t from, int64_t to) {
      const OrderedCsrView& a = views_[s];
      const double *xs = Of(x, s), *bs = Of(rhs, s);
      double* r = Of(out, s);
      for (int64_t slot = from; slot < to; ++slot) {
        const int32_t i = a.rows[slot];
        r[i] = bs[i] - RowProduct(a, slot, xs);
      }
    });
    return Status::Ok();
  }
  Status Multiply(Vec x, Vec out) override {
    Slots(0, n_, [&](int s, int64_t from, int64_t to) {
      const OrderedCsrView& a = views_[s];
      const double* xs = Of(x, s);
      double* y = Of(out, s);
      for (int64_t slot = from; slot < to; ++slot) y[a.rows[slot]] = RowProduct(a, slot, xs);
    });
    return Status::Ok();
  }
  Status Dot(Vec u, Vec v, Scalars* out) override {
    out->assign(batch(), 0.0);
    return Each([&](int s) {
      const double* us = Of(u, s);
      const double* vs = Of(v, s);
      double sum = 0;
      for (int32_t i = 0; i < n_; ++i) sum += us[i] * vs[i];
      (*out)[s] = sum;
    });
  }
  Status Axpy(const Scalars& alpha, Vec x, Vec y) override {
    return Each([&](int s) {
      const double* xs = Of(x, s);
      double* ys = Of(y, s);
      for (int32_t i = 0; i < n_; ++i) ys[i] += alpha[s] * xs[i];
    });
  }
  Status Xpay(Vec x, const Scalars& beta, Vec y) override {
    return Each([&](int s) {
      const double* xs = Of(x, s);
      double* ys = Of(y, s);
      for (int32_t i = 0; i < n_; ++i) ys[i] = xs[i] + beta[s] * ys[i];
    });
  }

 private:
  double* Of(Vec v, int s) { return vectors_[v].data() + static_cast<size_t>(s) * n_; }

  template <typename F>
  Status Each(F&& per_system) {
    for (int s = 0; s < batch(); ++s) {
      if (active_[s]) per_system(s);
    }
    return Status::Ok();
  }
  // per_range(s, from, to) over slots [begin, end) of every active system,
  // split over threads across systems and slots alike.
  template <typename F>
  void Slots(int64_t begin, int64_t end, F&& per_range) {
    const int64_t count = end - begin;
    if (count == 0) return;
    ParallelFor(count * batch(), threads_, [&](int64_t lo, int64_t hi) {
      // One system's run of slots at a time: a tight loop per system, as
      // small systems iterate in microseconds.
      for (int64_t q = lo; q < hi;) {
        const int s = static_cast<int>(q / count);
        const int64_t first = q % count, last = std::min(count, first + (hi - q));
        if (active_[s]) per_range(s, begin + first, begin + last);
        q += last - first;
      }
    }, kRowsPerThread);
  }

  void RelaxGroup(int64_t begin, int64_t end, Vec x, Vec rhs, const Scalars& omega,
                  bool forward) {
    auto relax = [&](int s, int64_t from, int64_t to) {
      const OrderedCsrView& a = views_[s];
      const double* bs = Of(rhs, s);
      double* xs = Of(x, s);
      if (forward) {
        for (int64_t k = from; k < to; ++k) RelaxRow(a, k, bs, omega[s], xs);
      } else {  // matters in natural order only: rows of a colour are uncoupled
        for (int64_t k = to - 1; k >= from; --k) RelaxRow(a, k, bs, omega[s], xs);
      }
    };
    if (order_.parallel) return Slots(begin, end, relax);
    // Natural order: one group, each row reading its neighbours' new values.
    (void)Each([&](int s) { relax(s, begin, end); });
  }

  const int32_t n_;
  const SweepOrder& order_;
  CsrMatrix ordered_;  // system 0 in sweep order; empty for the natural order
  std::vector<std::vector<double>> ordered_values_;  // systems 1.. in sweep order
  std::vector<OrderedCsrView> views_;
  const int threads_;
  std::vector<char> active_;
  std::vector<double> vectors_[kVectors];
};

}  // namespace

std::unique_ptr<SorBackend> MakeCpuBackend(const std::vector<const CsrMatrix*>& systems,
                                           const SweepOrder& order, int threads) {
  return std::make_unique<CpuBackend>(systems, order, threads);
}

}  // namespace solverd::sor::internal
