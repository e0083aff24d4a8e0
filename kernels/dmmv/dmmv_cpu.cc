// The CPU DmmvBackend: X kept as columns, moves scored in parallel. Each
// Score() visits an instance's rows worst first, so a move that cannot
// beat the cutoff is usually dropped after a handful of rows (the screening
// against the current worst rows); the rows that decide t are always seen.
//
// When the Gram matrices G = X^T W^2 X of the instances' weights are no
// larger than X, a move that stays within the cutoff is scored without a
// full pass either: moving column j by delta changes row k by at most
// |delta| max_k w_k |x_kj| (its reach), so once a row's w |D| plus the
// move's reach is below the largest violation seen, no later row can
// exceed it; and its sum of squares is ||W D||^2 + 2 delta g_j +
// delta^2 G_jj (plus a pair's cross term), with g = X^T W^2 D kept up to
// date as moves are applied. g is formed for an instance when a move of
// it is first scored, and a row of G when its column first moves:
// quantization's searches (Options::max_over_instances) touch few of either. On its
// instances (2048 tokens, a third of the moves within the cutoff) the full
// passes were nearly all of a round's time. The residuals themselves are
// always exact passes, in the CUDA kernels' order.
#include <algorithm>
#include <map>
#include <numeric>

#include "common/cpu_clones.h"
#include "common/parallel_for.h"
#include "dmmv/dmmv_backend.h"
#include "dmmv/dmmv_math.h"

namespace solverd::dmmv::internal {
namespace {

// Instances whose residuals SetValues forms together, so that each tile of
// X's rows is read from memory once for them all; within a block, passes
// of 4 instances x 8 rows keep their 32 running sums in registers (each
// row's sum still over the columns in order). Summing in memory, a
// load and a store per product, SetValues took longer than the search
// after it on quantization's layers.
constexpr int64_t kInstancesPerBlock = 8;
constexpr int64_t kInstancesPerPass = 4;
constexpr int64_t kRowsPerPass = 8;

// The instances that share one weight vector, and what scoring by Gram
// matrix needs of it.
struct WeightGroup {
  std::vector<double> weights;   // N
  std::vector<double> squares;   // N, the weights squared
  std::vector<double> reach;     // M: max_k w_k |x_kj|; empty: full passes
  std::vector<double> diagonal;  // M: G_jj
  std::vector<std::vector<double>> gram_rows;  // M rows of G, each formed on first use
};

struct PerInstance {
  const double* b = nullptr;
  WeightGroup* group = nullptr;
  std::vector<double> d;          // X v - b
  std::vector<double> gradient;   // X^T W^2 D (Gram scoring; empty until a move is scored)
  double sum_squares = 0;         // ||W D||^2 (Gram scoring)
  std::vector<int64_t> order;     // rows by w |D|, largest first
  int64_t ordered = 0;            // how many of `order` are sorted
  double ordered_down_to = 0;     // every row outside has w |D| below this
  bool stale = true;
};

double WeightedDot(const double* a, const double* b, const double* w, int64_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t k = 0; k < n; ++k) s += a[k] * w[k] * b[k];
  return s;
}

// Rows [k, k + kRowsPerPass) of X v_i for kInstancesPerPass instances (some
// pointers may repeat; only the first `count` are written), X by columns
// of `rows` entries: d_i[k] = sum_j x_kj v_ij over j in order, rounded as
// MulAdd, like the CUDA kernel.
SOLVERD_CPU_CLONES void ResidualPass(const double* columns, int64_t rows, int64_t cols,
                                     const double* const* v, int64_t count, int64_t k,
                                     double* const* d) {
  double sums[kInstancesPerPass][kRowsPerPass] = {};
  for (int64_t j = 0; j < cols; ++j) {
    const double* x = columns + j * rows + k;
    for (int64_t i = 0; i < kInstancesPerPass; ++i) {
      const double vij = v[i][j];
      for (int64_t t = 0; t < kRowsPerPass; ++t) sums[i][t] = MulAdd(x[t], vij, sums[i][t]);
    }
  }
  for (int64_t i = 0; i < count; ++i) {
    for (int64_t t = 0; t < kRowsPerPass; ++t) d[i][k + t] = sums[i][t];
  }
}

// out (cols x rows) = in (rows x cols), row-major, a square tile at a time:
// element by element, every write of a row of `in` landed in another page
// (2048 x 1024 took 0.1 s, longer than the search after it).
void TransposeByTiles(const double* in, int64_t rows, int64_t cols, double* out) {
  constexpr int64_t kTile = 32;
  for (int64_t k0 = 0; k0 < rows; k0 += kTile) {
    for (int64_t j0 = 0; j0 < cols; j0 += kTile) {
      const int64_t k1 = std::min(rows, k0 + kTile), j1 = std::min(cols, j0 + kTile);
      for (int64_t j = j0; j < j1; ++j) {
        for (int64_t k = k0; k < k1; ++k) out[j * rows + k] = in[k * cols + j];
      }
    }
  }
}

class CpuBackend final : public DmmvBackend {
 public:
  CpuBackend(const Problem& problem, int threads)
      : rows_(problem.rows), cols_(problem.cols), threads_(std::max(1, threads)),
        columns_(static_cast<size_t>(rows_ * cols_)) {
    TransposeByTiles(problem.x.data(), rows_, cols_, columns_.data());
    GroupByWeights(problem);
    for (const Instance& inst : problem.instances) {
      PerInstance p;
      p.b = inst.b.data();
      p.d.assign(rows_, 0.0);
      p.order.resize(rows_);
      instances_.push_back(std::move(p));
    }
    for (size_t i = 0; i < instances_.size(); ++i) instances_[i].group = &groups_[group_of_[i]];
    if (!UseGram(problem)) return;
    for (WeightGroup& g : groups_) {
      g.squares.resize(rows_);
      for (int64_t k = 0; k < rows_; ++k) g.squares[k] = g.weights[k] * g.weights[k];
      g.reach.assign(cols_, 0.0);
      g.diagonal.resize(cols_);
      g.gram_rows.resize(cols_);
      for (int64_t j = 0; j < cols_; ++j) {
        const double* x = Column(j);
        for (int64_t k = 0; k < rows_; ++k) {
          g.reach[j] = std::max(g.reach[j], g.weights[k] * Abs(x[k]));
        }
        g.diagonal[j] = WeightedDot(x, x, g.squares.data(), rows_);
      }
    }
  }

  Status SetValues(const std::vector<std::vector<double>>& values) override {
    const auto count = static_cast<int64_t>(values.size());
    const int64_t blocks = (count + kInstancesPerBlock - 1) / kInstancesPerBlock;
    ParallelFor(blocks, threads_, [&](int64_t begin, int64_t end) {
      for (int64_t block = begin; block < end; ++block) {
        const int64_t first = block * kInstancesPerBlock;
        SetBlock(values, first, std::min(count, first + kInstancesPerBlock));
      }
    }, 1);
    return Status::Ok();
  }

  Status Residual(int instance, std::vector<double>* d) override {
    *d = instances_[instance].d;
    return Status::Ok();
  }

  Status Score(const std::vector<Move>& moves, const std::vector<double>& cutoff,
               std::vector<MoveScore>* scores) override {
    scores->assign(moves.size(), MoveScore{});
    struct Needs {
      double reach = 0;     // the largest of the instance's moves
      bool moves = false;   // not only measuring: the gradient is needed
    };
    std::map<int, Needs> needs;
    for (const Move& m : moves) {
      Needs& n = needs[m.instance];
      n.reach = std::max(n.reach, Reach(m));
      n.moves = n.moves || !Still(m);
    }
    std::vector<PerInstance*> first_moved;
    for (const auto& [instance, n] : needs) {
      PerInstance& p = instances_[instance];
      RefreshOrder(p, n.reach);
      if (!p.group->reach.empty() && n.moves && p.gradient.empty()) first_moved.push_back(&p);
    }
    const auto count = static_cast<int64_t>(first_moved.size());
    ParallelFor(count, threads_, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) FormGradient(*first_moved[i]);
    }, 1);
    ParallelFor(static_cast<int64_t>(moves.size()), threads_, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        (*scores)[i] = ScoreOne(moves[i], cutoff[moves[i].instance]);
      }
    }, /*min_items_per_thread=*/16);
    return Status::Ok();
  }

  Status Apply(const std::vector<Move>& moves) override {
    for (const Move& m : moves) {
      PerInstance& p = instances_[m.instance];
      const double* x1 = Column(m.var1);
      const double* x2 = m.var2 >= 0 ? Column(m.var2) : nullptr;
      for (int64_t k = 0; k < rows_; ++k) {
        p.d[k] = MovedResidual(p.d[k], x1[k], m.delta1, x2 ? x2[k] : 0.0, x2 ? m.delta2 : 0.0);
      }
      p.stale = true;
      if (p.group->reach.empty()) continue;
      if (!p.gradient.empty()) {
        AddGramRow(p.group, m.var1, m.delta1, &p.gradient);
        if (m.var2 >= 0) AddGramRow(p.group, m.var2, m.delta2, &p.gradient);
      }
      p.sum_squares = SumSquares(p);
    }
    return Status::Ok();
  }

 private:
  const double* Column(int64_t j) const { return &columns_[static_cast<size_t>(j) * rows_]; }

  void GroupByWeights(const Problem& problem) {
    std::map<std::vector<double>, int> index;
    for (const Instance& inst : problem.instances) {
      std::vector<double> w = inst.weights.empty() ? std::vector<double>(rows_, 1.0) : inst.weights;
      auto [it, added] = index.emplace(std::move(w), static_cast<int>(groups_.size()));
      if (added) groups_.emplace_back().weights = it->first;
      group_of_.push_back(it->second);
    }
  }

  // Gram scoring pays when the Gram matrices are no larger than X.
  bool UseGram(const Problem& problem) const {
    return !problem.instances.empty() &&
           static_cast<double>(groups_.size()) * cols_ <= static_cast<double>(rows_);
  }

  // How far the move can change any row's weighted residual.
  double Reach(const Move& m) const {
    const WeightGroup& g = groups_[group_of_[m.instance]];
    if (g.reach.empty()) return 0;
    return Abs(m.delta1) * g.reach[m.var1] + (m.var2 >= 0 ? Abs(m.delta2) * g.reach[m.var2] : 0);
  }

  // D of instances [first, last), by ResidualPass over kRowsPerPass rows
  // of X at a time (the rest of the rows one at a time).
  void SetBlock(const std::vector<std::vector<double>>& values, int64_t first, int64_t last) {
    int64_t k = 0;
    for (; k + kRowsPerPass <= rows_; k += kRowsPerPass) {
      for (int64_t i0 = first; i0 < last; i0 += kInstancesPerPass) {
        const int64_t count = std::min(kInstancesPerPass, last - i0);
        const double* v[kInstancesPerPass];
        double* d[kInstancesPerPass];
        for (int64_t i = 0; i < kInstancesPerPass; ++i) {
          const int64_t at = i0 + std::min(i, count - 1);
          v[i] = values[at].data();
          d[i] = instances_[at].d.data();
        }
        ResidualPass(columns_.data(), rows_, cols_, v, count, k, d);
      }
    }
    for (; k < rows_; ++k) {
      for (int64_t i = first; i < last; ++i) {
        double sum = 0;
        for (int64_t j = 0; j < cols_; ++j) sum = MulAdd(Column(j)[k], values[i][j], sum);
        instances_[i].d[k] = sum;
      }
    }
    for (int64_t i = first; i < last; ++i) {
      PerInstance& p = instances_[i];
      for (int64_t r = 0; r < rows_; ++r) p.d[r] -= p.b[r];
      p.stale = true;
      if (p.group->reach.empty()) continue;
      p.sum_squares = SumSquares(p);
      p.gradient.clear();  // formed afresh when a move is next scored
    }
  }

  // A move that changes nothing: scoring it measures the instance.
  static bool Still(const Move& m) { return m.delta1 == 0 && (m.var2 < 0 || m.delta2 == 0); }

  // g = X^T W^2 D of an instance, for Gram scoring.
  void FormGradient(PerInstance& p) const {
    const std::vector<double>& squares = p.group->squares;
    p.gradient.resize(cols_);
    for (int64_t j = 0; j < cols_; ++j) {
      p.gradient[j] = WeightedDot(Column(j), p.d.data(), squares.data(), rows_);
    }
  }

  double SumSquares(const PerInstance& p) const {
    return WeightedDot(p.d.data(), p.d.data(), p.group->squares.data(), rows_);
  }

  // Row j of G, formed on first use.
  const std::vector<double>& GramRow(WeightGroup* g, int64_t j) const {
    std::vector<double>& row = g->gram_rows[j];
    if (!row.empty()) return row;
    row.resize(cols_);
    ParallelFor(cols_, threads_, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        row[c] = WeightedDot(Column(j), Column(c), g->squares.data(), rows_);
      }
    });
    return row;
  }

  void AddGramRow(WeightGroup* g, int64_t j, double delta, std::vector<double>* gradient) const {
    const std::vector<double>& row = GramRow(g, j);
    for (int64_t c = 0; c < cols_; ++c) (*gradient)[c] += delta * row[c];
  }

  // G_ab, from a row already formed, else by a dot product.
  double GramEntry(const WeightGroup& g, int64_t a, int64_t b) const {
    if (!g.gram_rows[a].empty()) return g.gram_rows[a][b];
    if (!g.gram_rows[b].empty()) return g.gram_rows[b][a];
    return WeightedDot(Column(a), Column(b), g.squares.data(), rows_);
  }

  // Rows by weighted |D|, largest first. With Gram scoring only the rows a
  // move of this reach can need are sorted: a move changes the worst row by
  // at most its reach, so rows below t - 2 reach never matter.
  void RefreshOrder(PerInstance& p, double reach) {
    const std::vector<double>& w = p.group->weights;
    const std::vector<double>& d = p.d;
    const auto violation = [&](int64_t k) { return w[k] * Abs(d[k]); };
    if (p.group->reach.empty()) {
      if (!p.stale) return;
      std::iota(p.order.begin(), p.order.end(), 0);
      std::sort(p.order.begin(), p.order.end(),
                [&](int64_t a, int64_t b) { return violation(a) > violation(b); });
      p.ordered = rows_, p.ordered_down_to = 0, p.stale = false;
      return;
    }
    double t = 0;
    for (int64_t k = 0; k < rows_; ++k) t = std::max(t, violation(k));
    const double down_to = std::max(0.0, t - 2 * reach);
    if (!p.stale && down_to >= p.ordered_down_to) return;
    std::iota(p.order.begin(), p.order.end(), 0);
    const auto middle = std::partition(p.order.begin(), p.order.end(),
                                       [&](int64_t k) { return violation(k) >= down_to; });
    std::sort(p.order.begin(), middle,
              [&](int64_t a, int64_t b) { return violation(a) > violation(b); });
    p.ordered = middle - p.order.begin();
    p.ordered_down_to = down_to;
    p.stale = false;
  }

  MoveScore ScoreOne(const Move& m, double cutoff) const {
    const PerInstance& p = instances_[m.instance];
    const std::vector<double>& w = p.group->weights;
    const double* x1 = Column(m.var1);
    const double* x2 = m.var2 >= 0 ? Column(m.var2) : nullptr;
    const bool gram = !p.group->reach.empty();
    const double reach = Reach(m);
    MoveScore s;
    for (int64_t n = 0; n < p.ordered; ++n) {
      const int64_t k = p.order[n];
      if (gram && w[k] * Abs(p.d[k]) + reach < s.max_violation) break;  // nor any row after
      const double moved =
          MovedResidual(p.d[k], x1[k], m.delta1, x2 ? x2[k] : 0.0, x2 ? m.delta2 : 0.0);
      const double v = w[k] * Abs(moved);
      if (v > s.max_violation) {
        s.max_violation = v;
        if (v > cutoff) return s;  // cannot win: the rest does not matter
      }
      if (!gram) s.sum_squares += v * v;
    }
    if (gram) s.sum_squares = GramSumSquares(p, m);
    return s;
  }

  // ||W (D + delta1 x1 + delta2 x2)||^2 from g and G.
  double GramSumSquares(const PerInstance& p, const Move& m) const {
    if (Still(m)) return p.sum_squares;
    const WeightGroup& g = *p.group;
    const int64_t j1 = m.var1, j2 = m.var2;
    double s = p.sum_squares + m.delta1 * (2 * p.gradient[j1] + m.delta1 * g.diagonal[j1]);
    if (j2 >= 0) {
      s += m.delta2 * (2 * p.gradient[j2] + m.delta2 * g.diagonal[j2]) +
           2 * m.delta1 * m.delta2 * GramEntry(g, j1, j2);
    }
    return std::max(0.0, s);
  }

  const int64_t rows_, cols_;
  const int threads_;
  std::vector<double> columns_;  // X column-major: column j at j * rows_
  std::vector<WeightGroup> groups_;
  std::vector<int> group_of_;    // per instance
  std::vector<PerInstance> instances_;
};

}  // namespace

std::unique_ptr<DmmvBackend> MakeCpuBackend(const Problem& problem, int threads) {
  return std::make_unique<CpuBackend>(problem, threads);
}

}  // namespace solverd::dmmv::internal
