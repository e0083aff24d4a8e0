// CPU backend of the ot solvers: rows in parallel over threads; column
// reductions stream C row-major (cache friendly) with one accumulator
// vector per thread, merged at the end.
#include <algorithm>
#include <cmath>
#include <vector>

#include "common/parallel_for.h"
#include "ot/ot_backend.h"
#include "ot/sinkhorn_math.h"

namespace solverd::ot::internal {
namespace {

constexpr int kHistogramBins = 2048;  // resolution of the sparsification threshold

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

class CpuOtBackend final : public OtBackend {
 public:
  CpuOtBackend(const Problem& p, int threads)
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
    std::vector<LogSumExp> lse = ReduceRowBlocks<LogSumExp>(
        p_.m, [&](int64_t i, std::vector<LogSumExp>& acc) {
          const double* c = &cost_[i * p_.m];
          for (int64_t j = 0; j < p_.m; ++j) acc[j].Add(p_.eta * (x_[i] - c[j]));
        },
        [](LogSumExp& into, const LogSumExp& from) { into.Merge(from); });
    for (int64_t j = 0; j < p_.m; ++j) y_[j] = BalancedPotential(p_.b[j], lse[j].value(), p_.eta);
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

  Status SetPotentials(const std::vector<double>& x, const std::vector<double>& y) override {
    x_ = x;
    y_ = y;
    return Status::Ok();
  }

  Status PlanMarginals(std::vector<double>* r, std::vector<double>* c, double* total) override {
    r->assign(p_.n, 0.0);
    *c = ReduceRowBlocks<double>(
        p_.m, [&](int64_t i, std::vector<double>& col) {
          double row = 0;
          for (int64_t j = 0; j < p_.m; ++j) {
            const double v = std::exp(LogPlan(p_.eta, x_[i], y_[j], cost_[i * p_.m + j]));
            row += v;
            col[j] += v;
          }
          (*r)[i] = row;
        },
        [](double& into, double from) { into += from; });
    *total = 0;
    for (double v : *r) *total += v;
    return Status::Ok();
  }

  Status LogPlanHistogram(double lo, double hi, std::vector<int64_t>* counts) override {
    const int bins = kHistogramBins;
    const double scale = bins / (hi - lo);
    *counts = ReduceRowBlocks<int64_t>(
        bins, [&](int64_t i, std::vector<int64_t>& hist) {
          for (int64_t j = 0; j < p_.m; ++j) {
            const double lp = LogPlan(p_.eta, x_[i], y_[j], cost_[i * p_.m + j]);
            if (lp >= lo) ++hist[HistogramBin(lp, lo, scale, bins)];
          }
        },
        [](int64_t& into, int64_t from) { into += from; });
    return Status::Ok();
  }

  Status SparsifyPlan(double log_threshold, int64_t* kept) override {
    std::vector<std::vector<std::pair<int64_t, double>>> rows(p_.n);
    ParallelFor(p_.n, threads_, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        for (int64_t j = 0; j < p_.m; ++j) {
          const double lp = LogPlan(p_.eta, x_[i], y_[j], cost_[i * p_.m + j]);
          if (lp >= log_threshold) rows[i].emplace_back(j, std::exp(lp));
        }
      }
    });
    sparse_row_start_.assign(p_.n + 1, 0);
    sparse_col_.clear();
    sparse_val_.clear();
    for (int64_t i = 0; i < p_.n; ++i) {
      for (const auto& [j, v] : rows[i]) {
        sparse_col_.push_back(j);
        sparse_val_.push_back(v);
      }
      sparse_row_start_[i + 1] = static_cast<int64_t>(sparse_col_.size());
    }
    *kept = static_cast<int64_t>(sparse_col_.size());
    return Status::Ok();
  }

  Status SparseProducts(const std::vector<double>& u, const std::vector<double>& v,
                        std::vector<double>* pv, std::vector<double>* ptu) override {
    pv->assign(p_.n, 0.0);
    ptu->assign(p_.m, 0.0);
    for (int64_t i = 0; i < p_.n; ++i) {
      for (int64_t k = sparse_row_start_[i]; k < sparse_row_start_[i + 1]; ++k) {
        (*pv)[i] += sparse_val_[k] * v[sparse_col_[k]];
        (*ptu)[sparse_col_[k]] += sparse_val_[k] * u[i];
      }
    }
    return Status::Ok();
  }

  Status SparseColumnSquares(const std::vector<double>& w, std::vector<double>* out) override {
    out->assign(p_.m, 0.0);
    for (int64_t i = 0; i < p_.n; ++i) {
      for (int64_t k = sparse_row_start_[i]; k < sparse_row_start_[i + 1]; ++k) {
        (*out)[sparse_col_[k]] += sparse_val_[k] * sparse_val_[k] * w[i];
      }
    }
    return Status::Ok();
  }

 private:
  // Reduces over all rows into a vector of `width` T: each thread streams a
  // block of rows with `row(i, acc)` into its own accumulator vector, and
  // the vectors are merged element-wise with `merge` at the end.
  template <typename T, typename RowFn, typename MergeFn>
  std::vector<T> ReduceRowBlocks(int64_t width, const RowFn& row, const MergeFn& merge) {
    const int64_t parts = std::clamp<int64_t>(threads_, 1,
                                              std::max<int64_t>(1, p_.n / kMinItemsPerThread));
    std::vector<std::vector<T>> partial(parts, std::vector<T>(width, T()));
    const int64_t chunk = (p_.n + parts - 1) / parts;
    ParallelFor(parts, parts, [&](int64_t pb, int64_t pe) {
      for (int64_t part = pb; part < pe; ++part) {
        for (int64_t i = part * chunk; i < std::min(p_.n, (part + 1) * chunk); ++i) {
          row(i, partial[part]);
        }
      }
    });
    for (int64_t part = 1; part < parts; ++part) {
      for (int64_t k = 0; k < width; ++k) merge(partial[0][k], partial[part][k]);
    }
    return std::move(partial[0]);
  }

  const Problem& p_;
  const int threads_;
  const std::vector<double> owned_cost_;
  const double* const cost_;  // n*m, row-major
  std::vector<double> x_, y_, row_lse_;
  // The sparse plan of the Newton stage, CSR.
  std::vector<int64_t> sparse_row_start_, sparse_col_;
  std::vector<double> sparse_val_;
};

}  // namespace

Status SolveCpu(const Problem& problem, const Options& options, ProgressSink* sink,
                const CancelToken* cancel, Result* result) {
  CpuOtBackend backend(problem, options.threads);
  return RunMethod(backend, problem, options, sink, cancel, result);
}

}  // namespace solverd::ot::internal
