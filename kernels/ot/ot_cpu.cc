// CPU backend of the ot solvers: rows in parallel over threads; column
// reductions stream C row-major (cache friendly) with one accumulator
// vector per thread, merged at the end.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <vector>

#include "common/parallel_for.h"
#include "ot/driver_util.h"
#include "ot/gibbs_kernel.h"
#include "ot/log_plan_rows.h"
#include "ot/ot_backend.h"
#include "ot/sparse_plan_matrix.h"
#include "ot/sinkhorn_math.h"

namespace solverd::ot::internal {
namespace {

constexpr int kHistogramBins = 2048;  // resolution of the sparsification threshold
// Log-domain steps in a row, at most, before the kernel is tried again.
constexpr int64_t kMaxLogBackoff = 64;

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
  CpuOtBackend(const Problem& p, const Options& o)
      : p_(p), threads_(std::max(1, o.threads)), owned_cost_(CostFromPoints(p, threads_)),
        cost_(p.has_points() ? owned_cost_.data() : p.cost.data()),
        x_(p.n, 0.0), y_(p.m, 0.0), row_sums_(p.n, 0.0) {
    if (!GibbsKernel::Fits(p.n, p.m)) return;
    // Single precision for Sinkhorn where the tolerance allows; Newton steps
    // would only turn it back to double (auto's: where SmallInDouble()).
    const double mass = std::accumulate(p.a.begin(), p.a.end(), 0.0);
    const bool newton = o.method == Method::kSns ||
                        (o.method == Method::kAuto && GibbsKernel::SmallInDouble(p.n, p.m));
    const KernelPrecision precision = newton ? KernelPrecision::kDouble
                                             : GibbsKernel::PrecisionFor(o.tolerance, mass);
    kernel_.emplace(cost_, p.n, p.m, p.eta, threads_, precision, mass);
  }

  // Sinkhorn iterations run in scaling form on the cached kernel where it
  // fits (see gibbs_kernel.h). When the scalings drift out of range the
  // kernel is rebuilt at the current potentials; when even a fresh kernel
  // cannot take a step (the first iterations at a huge eta * C, where
  // whole rows of exp(-eta C) underflow), log-domain steps run instead,
  // for twice as many iterations each time it happens again.
  Status SinkhornIteration(double keep_below, const Relaxation& relaxation, double* row_error,
                           bool* updated) override {
    if (kernel_ && log_steps_left_ == 0) {
      double error = 0, left = 0;
      for (bool fresh = !kernel_current_;; fresh = true) {
        if (fresh) RebuildKernel();
        if (kernel_->Iterate(p_.a, p_.b, relaxation, keep_below - column_error_, &error, updated,
                             &left)) {
          if (row_error != nullptr) *row_error = error + column_error_;
          if (*updated) column_error_ = left;
          potentials_stale_ = potentials_stale_ || *updated;
          log_backoff_ = 1;
          return Status::Ok();
        }
        if (fresh) break;
      }
      kernel_current_ = false;
      log_steps_left_ = log_backoff_;
      log_backoff_ = std::min(2 * log_backoff_, kMaxLogBackoff);
    }
    if (log_steps_left_ > 0) --log_steps_left_;
    return OtBackend::SinkhornIteration(keep_below, relaxation, row_error, updated);
  }

  // Sinkhorn in scaling form over the log-domain potentials: each half-step
  // sums the current plan's rows (columns) in one vectorised pass and
  // shifts the potentials by (log a - log r) / eta, which is the log-domain
  // update exactly. A row whose sum under- or overflows is recomputed by an
  // exact log-sum-exp instead, so no eta * C is too large.
  Status RowPass(double* row_error) override {
    SyncPotentials();
    if (kernel_current_) {
      kernel_->RowSums(&row_sums_);
    } else {
      ParallelFor(p_.n, threads_, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          row_sums_[i] = RowPlanSum(&cost_[i * p_.m], y_.data(), p_.m, p_.eta, x_[i]);
        }
      });
    }
    if (row_error != nullptr) {
      double e = column_error_ + (kernel_current_ ? kernel_->RoundingBound() : 0);
      for (int64_t i = 0; i < p_.n; ++i) e += std::fabs(row_sums_[i] - p_.a[i]);
      *row_error = e;
    }
    return Status::Ok();
  }

  Status UpdateRows(const Relaxation& relaxation) override {
    SyncPotentials();
    kernel_current_ = false;
    for (int64_t i = 0; i < p_.n; ++i) {
      x_[i] = Rebalanced(p_.a[i], x_[i], row_sums_[i], relaxation, [&] {
        LogSumExp acc;
        for (int64_t j = 0; j < p_.m; ++j) acc.Add(p_.eta * (y_[j] - cost_[i * p_.m + j]));
        return acc.value();
      }).potential;
    }
    return Status::Ok();
  }

  Status UpdateColumns(const Relaxation& relaxation) override {
    SyncPotentials();
    kernel_current_ = false;
    std::vector<double> sums = ColumnSums(nullptr);
    column_error_ = 0;
    for (int64_t j = 0; j < p_.m; ++j) {
      const RelaxedStep step = Rebalanced(p_.b[j], y_[j], sums[j], relaxation, [&] {
        LogSumExp acc;
        for (int64_t i = 0; i < p_.n; ++i) acc.Add(p_.eta * (x_[i] - cost_[i * p_.m + j]));
        return acc.value();
      });
      y_[j] = step.potential;
      column_error_ += RelaxedMarginalError(p_.b[j], step.log_ratio, step.factor);
    }
    return Status::Ok();
  }

  Status PlanTotals(double* transport_cost, double* plogp) override {
    if (kernel_current_) {  // no exp per entry
      kernel_->PlanTotals(transport_cost, plogp);
      return Status::Ok();
    }
    SyncPotentials();
    std::vector<PlanTerms> rows(p_.n);
    ParallelFor(p_.n, threads_, [&](int64_t begin, int64_t end) {
      std::vector<double> log_plan(p_.m), plan(p_.m);
      for (int64_t i = begin; i < end; ++i) {
        LogPlanRow(&cost_[i * p_.m], y_.data(), p_.m, p_.eta, x_[i], log_plan.data());
        ExpRow(log_plan.data(), p_.m, plan.data());
        rows[i] = RowPlanTerms(&cost_[i * p_.m], log_plan.data(), plan.data(), p_.m);
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
    SyncPotentials();
    *x = x_;
    *y = y_;
    return Status::Ok();
  }

  Status CopyPlan(std::vector<double>* plan) override {
    SyncPotentials();
    plan->resize(p_.n * p_.m);
    for (int64_t i = 0; i < p_.n; ++i) {
      for (int64_t j = 0; j < p_.m; ++j) {
        (*plan)[i * p_.m + j] = std::exp(LogPlan(p_.eta, x_[i], y_[j], cost_[i * p_.m + j]));
      }
    }
    return Status::Ok();
  }

  Status CopySparsePlan(double threshold, SparsePlan* plan) override {
    SyncPotentials();
    *plan = SparsePlan();
    const double log_threshold = std::log(threshold);
    for (int64_t i = 0; i < p_.n; ++i) {
      for (int64_t j = 0; j < p_.m; ++j) {
        const double lp = LogPlan(p_.eta, x_[i], y_[j], cost_[i * p_.m + j]);
        if (lp < log_threshold) continue;
        if (static_cast<int64_t>(plan->values.size()) == kMaxSparsePlanEntries) {
          return TooManyEntries(threshold);
        }
        plan->rows.push_back(i);
        plan->cols.push_back(j);
        plan->values.push_back(std::exp(lp));
      }
    }
    return Status::Ok();
  }

  Status SetPotentials(const std::vector<double>& x, const std::vector<double>& y) override {
    x_ = x;
    y_ = y;
    potentials_stale_ = false;
    column_error_ = 0;  // unknown until the next column update: RowPass()
    // Only Newton steps set potentials: they need K in double (see
    // gibbs_kernel.h); the next Sinkhorn iteration rebuilds it so.
    if (kernel_) kernel_->UseDoublePrecision();
    // Newton steps move the potentials little; the kernel usually holds.
    kernel_current_ = kernel_ && kernel_->SetPotentials(x, y);
    return Status::Ok();
  }

  Status PlanMarginals(std::vector<double>* r, std::vector<double>* c, double* total) override {
    if (KernelAtPotentials()) {
      kernel_->Marginals(r, c);
    } else {
      r->assign(p_.n, 0.0);
      *c = ColumnSums(r);
    }
    *total = std::accumulate(r->begin(), r->end(), 0.0);
    return Status::Ok();
  }

  Status LogPlanHistogram(const PlanRanking& ranking, double lo, double hi, int64_t row_stride,
                          std::vector<int64_t>* counts, std::vector<double>* masses) override {
    KernelAtPotentials();  // then P comes without an exp per entry
    SyncPotentials();
    const double scale = kHistogramBins / (hi - lo);
    struct Bin {
      int64_t count = 0;
      double mass = 0;
    };
    std::vector<Bin> bins = ReduceRowBlocks<Bin>(
        kHistogramBins, [&](int64_t i, std::vector<Bin>& hist) {
          if (i % row_stride != 0) return;
          // log P and P for the row first, in vector loops; then the
          // columns at or above lo listed without a branch, and the scatter
          // over those alone. A branch per entry, taken in no pattern (5%
          // of random assignment's entries are above lo), made the pass
          // cost ten Sinkhorn steps.
          thread_local std::vector<double> log_plan, plan, rank;
          thread_local std::vector<int32_t> above;
          log_plan.resize(p_.m);
          plan.resize(p_.m);
          rank.resize(p_.m);
          above.resize(p_.m);
          LogPlanRow(&cost_[i * p_.m], y_.data(), p_.m, p_.eta, x_[i], log_plan.data());
          PlanRowAt(i, log_plan.data(), plan.data());
          RankRow(log_plan.data(), ranking.row[i], ranking.col.data(), p_.m, rank.data());
          const int64_t count = ColumnsAtLeast(rank.data(), p_.m, lo, above.data());
          for (int64_t k = 0; k < count; ++k) {
            const int32_t j = above[k];
            Bin& bin = hist[HistogramBin(rank[j], lo, scale, kHistogramBins)];
            ++bin.count;
            bin.mass += plan[j];
          }
        },
        [](Bin& into, const Bin& from) {
          into.count += from.count;
          into.mass += from.mass;
        });
    counts->resize(kHistogramBins);
    masses->resize(kHistogramBins);
    for (int k = 0; k < kHistogramBins; ++k) {
      (*counts)[k] = bins[k].count;
      (*masses)[k] = bins[k].mass;
    }
    return Status::Ok();
  }

  Status SparsifyPlan(const PlanRanking& ranking, double threshold, int64_t* kept) override {
    whole_plan_ = false;
    const bool kernel = KernelAtPotentials();
    SyncPotentials();
    sparse_plan_.Build(
        p_.n, p_.m, threads_, KeepRule{threshold, ranking.row.data(), ranking.col.data()},
        [&](int64_t i, double* out) {
          LogPlanRow(&cost_[i * p_.m], y_.data(), p_.m, p_.eta, x_[i], out);
        },
        kernel ? SparsePlanMatrix::PlanRowFn([&](int64_t i, double* out) {
          kernel_->PlanRow(i, out);
        })
               : nullptr);
    *kept = sparse_plan_.entries();
    return Status::Ok();
  }

  // The whole plan's products go over the cached kernel at the current
  // potentials, one pass each; without a kernel (too large to cache) an
  // exp per entry and product would cost several Sinkhorn steps.
  Status UseWholePlan(bool* used) override {
    *used = whole_plan_ = KernelAtPotentials();
    return Status::Ok();
  }

  Status RefreshSparsePlan(double* kept_mass) override {
    if (whole_plan_) {
      KernelAtPotentials();
      if (kept_mass == nullptr) return Status::Ok();
      std::vector<double> rows;
      kernel_->RowSums(&rows);
      *kept_mass = std::accumulate(rows.begin(), rows.end(), 0.0);
      return Status::Ok();
    }
    // From the kernel where it stands for the potentials (a product per
    // kept entry), else an exp each; rebuilding K at moved potentials
    // would take an exp per entry of the plan. On pot_n2000 (1.2M kept
    // entries) 3.2 ms by exp, 2.5 ms from the kernel.
    SyncPotentials();
    const double mass = sparse_plan_.Refresh(
        [&](int64_t i, const int32_t* columns, int64_t count, double* out) {
          if (kernel_current_) {
            kernel_->PlanAt(i, columns, count, out);
          } else {
            PlanAtColumns(&cost_[i * p_.m], y_.data(), p_.eta, x_[i], columns, count, out);
          }
        });
    if (kept_mass != nullptr) *kept_mass = mass;
    return Status::Ok();
  }

  Status SparseMultiply(bool transpose, const std::vector<double>& in,
                        std::vector<double>* out) override {
    if (WholePlanAtPotentials()) {
      if (transpose) {
        kernel_->PlanTransposeTimes(in, out);
      } else {
        kernel_->PlanTimes(in, out);
      }
    } else if (transpose) {
      sparse_plan_.MultiplyTransposed(in, out);
    } else {
      sparse_plan_.Multiply(in, out);
    }
    return Status::Ok();
  }

  Status SparseColumnSquares(const std::vector<double>& w, std::vector<double>* out) override {
    if (WholePlanAtPotentials()) {
      kernel_->PlanColumnSquares(w, out);
    } else {
      sparse_plan_.ColumnSquares(w, out);
    }
    return Status::Ok();
  }

  Status SparseGramTimes(const std::vector<double>& w, const std::vector<double>& v,
                         std::vector<double>* out, std::vector<double>* plan_v) override {
    if (!WholePlanAtPotentials()) return OtBackend::SparseGramTimes(w, v, out, plan_v);
    kernel_->PlanGramTimes(w, v, out, plan_v);
    return Status::Ok();
  }

  Status SparseHeaviestWeightedRows(const std::vector<double>& weight,
                                    std::vector<int32_t>* rows) override {
    if (!WholePlanAtPotentials()) {
      sparse_plan_.HeaviestWeightedRows(weight, rows);
      return Status::Ok();
    }
    kernel_->PlanHeaviestWeightedRows(weight, rows);
    return Status::Ok();
  }

  Status SparseGroupRowSums(const std::vector<int32_t>& group, int size,
                            std::vector<double>* q) override {
    if (!WholePlanAtPotentials()) {
      sparse_plan_.GroupRowSums(group, size, q);
      return Status::Ok();
    }
    kernel_->PlanGroupRowSums(group, size, q);
    return Status::Ok();
  }

  Status SparseSchurSetup(const std::vector<double>& w, const std::vector<double>& square_weights,
                          const std::vector<int32_t>& group, int size, std::vector<double>* back,
                          std::vector<double>* squares, std::vector<double>* q) override {
    if (!WholePlanAtPotentials()) {
      return OtBackend::SparseSchurSetup(w, square_weights, group, size, back, squares, q);
    }
    kernel_->PlanSchurSetup(w, square_weights, group, size, back, squares, q);
    return Status::Ok();
  }

 private:
  // True when the kernel stands for the current potentials, after rebuilding
  // it there if need be (an exp pass, as a log-domain pass costs; the Newton
  // stage's passes after it need none); false without a kernel.
  bool KernelAtPotentials() {
    if (!kernel_) return false;
    if (!kernel_current_) RebuildKernel();
    return true;
  }

  // Whether the sparse plan is the whole plan (UseWholePlan()), with the
  // kernel made current for its products.
  bool WholePlanAtPotentials() { return whole_plan_ && KernelAtPotentials(); }

  // K rebuilt at the current potentials, scalings 1.
  void RebuildKernel() {
    SyncPotentials();
    kernel_->Rebuild(x_, y_);
    kernel_current_ = true;
  }

  // plan[j] = P_ij from the kernel when it is current, else exp(log_plan[j]).
  void PlanRowAt(int64_t i, const double* log_plan, double* plan) const {
    if (kernel_current_) {
      kernel_->PlanRow(i, plan);
    } else {
      ExpRow(log_plan, p_.m, plan);
    }
  }

  // x_, y_ <- the potentials the kernel's scalings stand for, if behind.
  void SyncPotentials() {
    if (!potentials_stale_) return;
    kernel_->Potentials(&x_, &y_);
    potentials_stale_ = false;
  }

  // The half-step of a potential whose row (column) of mass `mass` sums to
  // `sum`, toward the potential that balances it (RelaxedPotential());
  // exact_lse() gives log sum_j exp(eta (y_j - C_ij)) for the rare sums too
  // small or large to use.
  template <typename ExactLse>
  RelaxedStep Rebalanced(double mass, double potential, double sum,
                         const Relaxation& relaxation, const ExactLse& exact_lse) {
    const bool usable = sum > kMinUsableSum && sum < kMaxUsableSum;
    const double balanced = mass <= 0 ? -INFINITY
                            : usable  ? potential + (std::log(mass) - std::log(sum)) / p_.eta
                                      : BalancedPotential(mass, exact_lse(), p_.eta);
    return RelaxedPotential(potential, balanced, p_.eta, relaxation);
  }

  // Column sums of the current plan; also its row sums when `rows` is set.
  std::vector<double> ColumnSums(std::vector<double>* rows) {
    return ReduceRowBlocks<double>(
        p_.m, [&](int64_t i, std::vector<double>& col) {
          double row = RowPlanAccumulate(&cost_[i * p_.m], y_.data(), p_.m, p_.eta, x_[i],
                                         col.data());
          if (rows != nullptr) (*rows)[i] = row;
        },
        [](double& into, double from) { into += from; });
  }

  // Reduces over all rows into a vector of `width` T: each thread streams a
  // block of rows with `row(i, acc)` into its own accumulator vector, and
  // the vectors are merged element-wise with `merge` at the end.
  template <typename T, typename RowFn, typename MergeFn>
  std::vector<T> ReduceRowBlocks(int64_t width, const RowFn& row, const MergeFn& merge) {
    const int64_t parts = PartCount(p_.n, threads_);
    // Padded past the end so that no two parts write one cache line.
    std::vector<std::vector<T>> partial(parts, std::vector<T>(width + 64 / sizeof(T) + 1, T()));
    ParallelForParts(p_.n, parts, [&](int64_t part, int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) row(i, partial[part]);
    });
    for (int64_t part = 1; part < parts; ++part) {
      for (int64_t k = 0; k < width; ++k) merge(partial[0][k], partial[part][k]);
    }
    partial[0].resize(width);
    return std::move(partial[0]);
  }

  const Problem& p_;
  const int threads_;
  const std::vector<double> owned_cost_;
  const double* const cost_;  // n*m, row-major
  std::vector<double> x_, y_;
  std::vector<double> row_sums_;  // of the plan, as of the last RowPass()
  // Scaling form (absent when K would not fit); kernel_current_: its
  // scalings describe the current potentials; potentials_stale_: x_, y_
  // are behind them.
  std::optional<GibbsKernel> kernel_;
  bool kernel_current_ = false;
  bool potentials_stale_ = false;
  int64_t log_steps_left_ = 0, log_backoff_ = 1;
  double column_error_ = 0;  // what the last column update left (RowPass())
  SparsePlanMatrix sparse_plan_;  // of the Newton stage
  bool whole_plan_ = false;       // the Newton stage's plan is all of P: no sparse_plan_
};

}  // namespace

Status SolveCpu(const Problem& problem, const Options& options, ProgressSink* sink,
                const CancelToken* cancel, Result* result) {
  CpuOtBackend backend(problem, options);
  return RunMethod(backend, problem, options, sink, cancel, result);
}

Status ContinueSnsCpu(const Problem& problem, const Options& options,
                      const std::vector<double>& x, const std::vector<double>& y,
                      ProgressSink* sink, const CancelToken* cancel, SolveState* state,
                      Result* result) {
  CpuOtBackend backend(problem, options);
  SOLVERD_RETURN_IF_ERROR(backend.SetPotentials(x, y));
  return FinishSns(backend, problem, options, sink, cancel, state, result);
}

}  // namespace solverd::ot::internal
