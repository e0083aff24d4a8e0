// The CPU DmmvBackend: X kept as columns, moves scored in parallel. Each
// Score() visits an instance's rows worst first, so a move that cannot
// beat the cutoff is usually dropped after a handful of rows (the screening
// against the current worst rows); the rows that decide t are always seen.
#include <algorithm>
#include <numeric>

#include "common/parallel_for.h"
#include "dmmv/dmmv_backend.h"
#include "dmmv/dmmv_math.h"

namespace solverd::dmmv::internal {
namespace {

class CpuBackend final : public DmmvBackend {
 public:
  CpuBackend(const Problem& problem, int threads)
      : rows_(problem.rows), cols_(problem.cols), threads_(std::max(1, threads)),
        columns_(static_cast<size_t>(rows_ * cols_)) {
    for (int64_t k = 0; k < rows_; ++k) {
      for (int64_t j = 0; j < cols_; ++j) columns_[j * rows_ + k] = problem.x[k * cols_ + j];
    }
    for (const Instance& inst : problem.instances) {
      b_.push_back(inst.b);
      weights_.push_back(inst.weights.empty() ? std::vector<double>(rows_, 1.0) : inst.weights);
      residual_.emplace_back(rows_, 0.0);
      order_.emplace_back(rows_);
      order_stale_.push_back(true);
    }
  }

  Status SetValues(int instance, const std::vector<double>& values) override {
    std::vector<double>& d = residual_[instance];
    const std::vector<double>& b = b_[instance];
    // Each row sums its columns in order (the CUDA kernel's order); the
    // loops run column-wise only so that the columns are read contiguously.
    std::fill(d.begin(), d.end(), 0.0);
    for (int64_t j = 0; j < cols_; ++j) {
      const double* column = &columns_[j * rows_];
      for (int64_t k = 0; k < rows_; ++k) d[k] = MulAdd(column[k], values[j], d[k]);
    }
    for (int64_t k = 0; k < rows_; ++k) d[k] -= b[k];
    order_stale_[instance] = true;
    return Status::Ok();
  }

  Status Residual(int instance, std::vector<double>* d) override {
    *d = residual_[instance];
    return Status::Ok();
  }

  Status Score(const std::vector<Move>& moves, const std::vector<double>& cutoff,
               std::vector<MoveScore>* scores) override {
    scores->assign(moves.size(), MoveScore{});
    for (const Move& m : moves) RefreshOrder(m.instance);
    ParallelFor(static_cast<int64_t>(moves.size()), threads_, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) (*scores)[i] = ScoreOne(moves[i], cutoff[moves[i].instance]);
    }, /*min_items_per_thread=*/16);
    return Status::Ok();
  }

  Status Apply(const std::vector<Move>& moves) override {
    for (const Move& m : moves) {
      std::vector<double>& d = residual_[m.instance];
      const double* x1 = &columns_[static_cast<size_t>(m.var1) * rows_];
      const double* x2 = m.var2 >= 0 ? &columns_[static_cast<size_t>(m.var2) * rows_] : nullptr;
      for (int64_t k = 0; k < rows_; ++k) {
        d[k] = MovedResidual(d[k], x1[k], m.delta1, x2 ? x2[k] : 0.0, x2 ? m.delta2 : 0.0);
      }
      order_stale_[m.instance] = true;
    }
    return Status::Ok();
  }

 private:
  // Rows by weighted |D|, largest first.
  void RefreshOrder(int instance) {
    if (!order_stale_[instance]) return;
    std::vector<int64_t>& order = order_[instance];
    const std::vector<double>& d = residual_[instance];
    const std::vector<double>& w = weights_[instance];
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return w[a] * Abs(d[a]) > w[b] * Abs(d[b]);
    });
    order_stale_[instance] = false;
  }

  MoveScore ScoreOne(const Move& m, double cutoff) const {
    const std::vector<double>& d = residual_[m.instance];
    const std::vector<double>& w = weights_[m.instance];
    const double* x1 = &columns_[static_cast<size_t>(m.var1) * rows_];
    const double* x2 = m.var2 >= 0 ? &columns_[static_cast<size_t>(m.var2) * rows_] : nullptr;
    MoveScore s;
    for (int64_t k : order_[m.instance]) {
      const double moved =
          MovedResidual(d[k], x1[k], m.delta1, x2 ? x2[k] : 0.0, x2 ? m.delta2 : 0.0);
      const double v = w[k] * Abs(moved);
      if (v > s.max_violation) {
        s.max_violation = v;
        if (v > cutoff) return s;  // cannot win: the rest does not matter
      }
      s.sum_squares += v * v;
    }
    return s;
  }

  const int64_t rows_, cols_;
  const int threads_;
  std::vector<double> columns_;  // X column-major: column j at j * rows_
  std::vector<std::vector<double>> b_, weights_, residual_;
  std::vector<std::vector<int64_t>> order_;
  std::vector<bool> order_stale_;
};

}  // namespace

std::unique_ptr<DmmvBackend> MakeCpuBackend(const Problem& problem, int threads) {
  return std::make_unique<CpuBackend>(problem, threads);
}

}  // namespace solverd::dmmv::internal
