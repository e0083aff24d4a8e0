// CPU backend of log-domain Sinkhorn: rows in parallel over threads; the
// column pass is done row-major (cache friendly) with one accumulator
// vector per thread, merged at the end.
#include <algorithm>
#include <cmath>
#include <vector>

#include "common/parallel_for.h"
#include "ot/sinkhorn_backend.h"
#include "ot/sinkhorn_math.h"

namespace solverd::ot::internal {
namespace {

// The cost matrix built from point clouds; empty when the problem has one.
std::vector<double> CostFromPoints(const Problem& p, int threads) {
  if (!p.has_points()) return {};
  std::vector<double> c(p.n * p.m);
  ParallelFor(p.n, threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      for (int64_t j = 0; j < p.m; ++j) {
        c[i * p.m + j] = PointCost(&p.x_points[i * p.dim], &p.y_points[j * p.dim],
                                   p.dim, p.cost_power);
      }
    }
  });
  return c;
}

class CpuSinkhorn final : public SinkhornBackend {
 public:
  CpuSinkhorn(const Problem& p, int threads)
      : p_(p), threads_(std::max(1, threads)), owned_cost_(CostFromPoints(p, threads_)),
        cost_(p.has_points() ? owned_cost_.data() : p.cost.data()),
        x_(p.n, 0.0), y_(p.m, 0.0), row_lse_(p.n, 0.0) {}

  Status RowPass(double* row_error) override {
    std::vector<double> errors(p_.n);
    ParallelFor(p_.n, threads_, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const double* c = &cost_[i * p_.m];
        LogSumExp acc;
        for (int64_t j = 0; j < p_.m; ++j) acc.Add(p_.eta * (y_[j] - c[j]));
        row_lse_[i] = acc.value();
        errors[i] = std::fabs(MarginalFromLse(x_[i], row_lse_[i], p_.eta) - p_.a[i]);
      }
    });
    if (row_error != nullptr) {
      double e = 0;
      for (double v : errors) e += v;
      *row_error = e;
    }
    return Status::Ok();
  }

  Status UpdateRows() override {
    for (int64_t i = 0; i < p_.n; ++i) {
      x_[i] = BalancedPotential(p_.a[i], row_lse_[i], p_.eta);
    }
    return Status::Ok();
  }

  Status UpdateColumns() override {
    // Each thread streams its rows once, keeping one accumulator per column.
    int parts = static_cast<int>(std::clamp<int64_t>(threads_, 1,
        std::max<int64_t>(1, p_.n / kMinItemsPerThread)));
    std::vector<std::vector<LogSumExp>> partial(parts, std::vector<LogSumExp>(p_.m));
    int64_t chunk = (p_.n + parts - 1) / parts;
    ParallelFor(parts, parts, [&](int64_t pb, int64_t pe) {
      for (int64_t part = pb; part < pe; ++part) {
        auto& acc = partial[part];
        for (int64_t i = part * chunk; i < std::min(p_.n, (part + 1) * chunk); ++i) {
          const double* c = &cost_[i * p_.m];
          for (int64_t j = 0; j < p_.m; ++j) acc[j].Add(p_.eta * (x_[i] - c[j]));
        }
      }
    });
    for (int64_t j = 0; j < p_.m; ++j) {
      for (int part = 1; part < parts; ++part) partial[0][j].Merge(partial[part][j]);
      y_[j] = BalancedPotential(p_.b[j], partial[0][j].value(), p_.eta);
    }
    return Status::Ok();
  }

  Status PlanTotals(double* transport_cost, double* plogp) override {
    std::vector<PlanTerms> rows(p_.n);
    ParallelFor(p_.n, threads_, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        for (int64_t j = 0; j < p_.m; ++j) {
          double c = cost_[i * p_.m + j];
          rows[i].Add(LogPlan(p_.eta, x_[i], y_[j], c), c);
        }
      }
    });
    *transport_cost = *plogp = 0;
    for (const auto& r : rows) {
      *transport_cost += r.cost;
      *plogp += r.plogp;
    }
    return Status::Ok();
  }

  Status CopyPotentials(std::vector<double>* x, std::vector<double>* y) override {
    *x = x_;
    *y = y_;
    return Status::Ok();
  }

  Status CopyPlan(std::vector<double>* plan) override {
    plan->resize(p_.n * p_.m);
    for (int64_t i = 0; i < p_.n; ++i) {
      for (int64_t j = 0; j < p_.m; ++j) {
        (*plan)[i * p_.m + j] = std::exp(LogPlan(p_.eta, x_[i], y_[j], cost_[i * p_.m + j]));
      }
    }
    return Status::Ok();
  }

 private:
  const Problem& p_;
  const int threads_;
  const std::vector<double> owned_cost_;
  const double* const cost_;  // n*m, row-major
  std::vector<double> x_, y_, row_lse_;
};

}  // namespace

Status SolveSinkhornCpu(const Problem& problem, const Options& options,
                        ProgressSink* sink, const CancelToken* cancel,
                        Result* result) {
  CpuSinkhorn backend(problem, options.threads);
  return RunSinkhorn(backend, problem, options, sink, cancel, result);
}

}  // namespace solverd::ot::internal
