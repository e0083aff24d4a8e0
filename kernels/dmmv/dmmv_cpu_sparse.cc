// The CPU DmmvBackend for a sparse X: residuals from X's rows, moves scored
// from X's columns (dmmv_sparse.h), in parallel over the moves.
#include <algorithm>

#include "common/parallel_for.h"
#include "dmmv/dmmv_backend.h"
#include "dmmv/dmmv_sparse.h"

namespace solverd::dmmv::internal {
namespace {

class SparseCpuBackend final : public DmmvBackend {
 public:
  SparseCpuBackend(const Problem& problem, const CscMatrix& columns, int threads)
      : rows_(problem.rows), x_(problem.x_csr), columns_(columns),
        top_count_(TopRowCount(problem.rows, columns)), threads_(std::max(1, threads)),
        instances_(problem.instances.size()) {
    for (size_t i = 0; i < instances_.size(); ++i) {
      const Instance& inst = problem.instances[i];
      PerInstance& p = instances_[i];
      p.b = inst.b;
      p.w = inst.weights.empty() ? std::vector<double>(rows_, 1.0) : inst.weights;
      p.d.assign(rows_, 0.0);
    }
  }

  Status SetValues(const std::vector<std::vector<double>>& values) override {
    for (size_t i = 0; i < values.size(); ++i) {
      PerInstance& p = instances_[i];
      for (int64_t k = 0; k < rows_; ++k) {
        p.d[k] = SparseRowResidual(x_.row_offsets.data(), x_.columns.data(), x_.values.data(),
                                   k, values[i].data(), p.b[k]);
      }
      p.stale = true;
    }
    return Status::Ok();
  }

  Status Residual(int instance, std::vector<double>* d) override {
    *d = instances_[instance].d;
    return Status::Ok();
  }

  Status Score(const std::vector<Move>& moves, const std::vector<double>&,
               std::vector<MoveScore>* scores) override {
    scores->assign(moves.size(), MoveScore{});
    for (const Move& m : moves) Refresh(instances_[m.instance]);
    ParallelFor(static_cast<int64_t>(moves.size()), threads_, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const Move& m = moves[i];
        const PerInstance& p = instances_[m.instance];
        (*scores)[i] = ScoreSparseMove(Column(m.var1), m.delta1, Column(m.var2), m.delta2,
                                       p.d.data(), p.w.data(), p.top.data(), top_count_,
                                       p.total_squares);
      }
    }, /*min_items_per_thread=*/64);
    return Status::Ok();
  }

  Status Apply(const std::vector<Move>& moves) override {
    for (const Move& m : moves) {
      PerInstance& p = instances_[m.instance];
      ApplySparseColumn(Column(m.var1), m.delta1, p.d.data());
      ApplySparseColumn(Column(m.var2), m.delta2, p.d.data());
      p.stale = true;
    }
    return Status::Ok();
  }

 private:
  struct PerInstance {
    std::vector<double> b, w, d;
    std::vector<int32_t> top;
    double total_squares = 0;
    bool stale = true;
  };

  // Column j, or an empty one for j < 0 (no second variable).
  ColumnView Column(int32_t j) const {
    if (j < 0) return {};
    const int64_t begin = columns_.col_offsets[j];
    return {columns_.rows.data() + begin, columns_.values.data() + begin,
            columns_.col_offsets[j + 1] - begin};
  }

  void Refresh(PerInstance& p) const {
    if (!p.stale) return;
    TopRows(p.d.data(), p.w.data(), rows_, top_count_, &p.top);
    p.total_squares = SumSquares(p.d.data(), p.w.data(), rows_);
    p.stale = false;
  }

  const int64_t rows_;
  const CsrMatrix& x_;
  const CscMatrix& columns_;
  const int64_t top_count_;
  const int threads_;
  std::vector<PerInstance> instances_;
};

}  // namespace

std::unique_ptr<DmmvBackend> MakeSparseCpuBackend(const Problem& problem,
                                                  const CscMatrix& columns, int threads) {
  return std::make_unique<SparseCpuBackend>(problem, columns, threads);
}

}  // namespace solverd::dmmv::internal
