// Coordinate descent on each row's output error e^T H e: a move of one
// code by one grid step changes e_c by delta and the error by
// delta (2 (H e)_c + delta H_cc), so with g = H e kept up to date a sweep
// scores every column in O(1) and pays O(cols) per move taken.
//
// The cap check is where the cost hid: x_k . e for every token k is a
// pass over the inputs per row, and summing each token in double where a
// move came near the cap took the polish to 0.6x GPTQ's time on the test
// LM. So a row starts from GPTQ's residuals, summed in float by the rows'
// selection pass (plus the columns the search moved), keeps what its own
// moves add per token, and sums a token again in double only when the
// float figure comes within kFloatMargin of the cap: about 1,200 tokens
// over the test LM's 16 layers instead of 3.9 million.
#include "quant/output_error_polish.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/cpu_clones.h"
#include "common/huge_page_array.h"
#include "common/parallel_for.h"
#include "quant/quant_backend.h"

namespace solverd::quant::internal {
namespace {

// Rows whose H e are formed together, sharing each pass over H's rows.
constexpr int64_t kRowsPerTile = 8;
// A move is taken when it lowers the output error by more than this share
// of delta^2 H_cc (what the move alone adds): below it, float rounding of
// the running g could take a move back and forth.
constexpr double kLeastGain = 1e-9;
// Tokens whose bound is checked at once, before any one is looked at.
constexpr int64_t kTokensPerCheck = 64;

// The inputs by columns, for the moves' passes over tokens, and each
// column's largest |x_kc|, for the quick bound.
struct ColumnInputs {
  HugePageArray<float> by_column;  // cols x tokens
  std::vector<double> largest;   // per column
};

ColumnInputs ByColumns(const Layer& layer, int threads) {
  constexpr int64_t kBlock = 64;  // columns whose tokens are copied together
  const int64_t tokens = layer.tokens, cols = layer.cols;
  ColumnInputs x;
  x.by_column = HugePageArray<float>(cols * tokens);
  x.largest.resize(static_cast<size_t>(cols));
  const float* in = layer.inputs.data();
  ParallelFor((cols + kBlock - 1) / kBlock, threads, [&](int64_t begin, int64_t end) {
    for (int64_t c0 = begin * kBlock; c0 < std::min(cols, end * kBlock); c0 += kBlock) {
      const int64_t c1 = std::min(cols, c0 + kBlock);
      for (int64_t k = 0; k < tokens; ++k) {
        for (int64_t c = c0; c < c1; ++c) x.by_column[c * tokens + k] = in[k * cols + c];
      }
      for (int64_t c = c0; c < c1; ++c) {
        float largest = 0;
        const float* x_c = &x.by_column[c * tokens];
#pragma omp simd reduction(max : largest)
        for (int64_t k = 0; k < tokens; ++k) largest = std::max(largest, std::fabs(x_c[k]));
        x.largest[c] = largest;
      }
    }
  }, 1);
  return x;
}

// g[i] = H e[i] for the `n` rows of a tile (each cols long, contiguous):
// blocks of kGradientRows rows x kGradientColumns columns of g stay in
// registers while every row of H passes by (an axpy per row of H and of
// the tile ran at half the speed, on g's loads and stores).
constexpr int64_t kGradientRows = 4, kGradientColumns = 8;

SOLVERD_CPU_CLONES void TileGradients(const double* h, int64_t cols, const double* e, int64_t n,
                                      double* g) {
  for (int64_t i0 = 0; i0 < n; i0 += kGradientRows) {
    // Past the tile's last row, that row again (computed, not stored).
    const double* rows[kGradientRows];
    for (int64_t i = 0; i < kGradientRows; ++i) rows[i] = e + std::min(i0 + i, n - 1) * cols;
    for (int64_t c0 = 0; c0 < cols; c0 += kGradientColumns) {
      if (c0 + kGradientColumns > cols) {  // the last columns, one by one
        for (int64_t i = i0; i < std::min(n, i0 + kGradientRows); ++i) {
          for (int64_t c = c0; c < cols; ++c) {
            double sum = 0;
            for (int64_t k = 0; k < cols; ++k) sum += e[i * cols + k] * h[k * cols + c];
            g[i * cols + c] = sum;
          }
        }
        break;
      }
      double sums[kGradientRows][kGradientColumns] = {};
      for (int64_t k = 0; k < cols; ++k) {
        const double* h_k = h + k * cols + c0;
        for (int64_t i = 0; i < kGradientRows; ++i) {
          const double e_k = rows[i][k];
#pragma omp simd
          for (int64_t j = 0; j < kGradientColumns; ++j) sums[i][j] += e_k * h_k[j];
        }
      }
      for (int64_t i = 0; i < std::min(kGradientRows, n - i0); ++i) {
        std::copy(sums[i], sums[i] + kGradientColumns, g + (i0 + i) * cols + c0);
      }
    }
  }
}

// y += a x over n entries.
SOLVERD_CPU_CLONES void AddScaled(double a, const float* x, int64_t n, double* y) {
#pragma omp simd
  for (int64_t k = 0; k < n; ++k) y[k] += a * x[k];
}

// moved += delta x over n tokens; returns max |approximate + moved| after.
SOLVERD_CPU_CLONES double MoveTokens(double delta, const float* x, const double* approximate,
                                     int64_t n, double* moved) {
  double largest = 0;
#pragma omp simd reduction(max : largest)
  for (int64_t k = 0; k < n; ++k) {
    moved[k] += delta * x[k];
    largest = std::max(largest, std::fabs(approximate[k] + moved[k]));
  }
  return largest;
}

// max |approximate + moved + delta x| over n tokens.
SOLVERD_CPU_CLONES double LargestAfter(double delta, const float* x, const double* approximate,
                                       const double* moved, int64_t n) {
  double largest = 0;
#pragma omp simd reduction(max : largest)
  for (int64_t k = 0; k < n; ++k) {
    largest = std::max(largest, std::fabs(approximate[k] + moved[k] + delta * x[k]));
  }
  return largest;
}

// x . y over n entries, in double.
SOLVERD_CPU_CLONES double Dot(const float* x, const double* y, int64_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t c = 0; c < n; ++c) s += static_cast<double>(x[c]) * y[c];
  return s;
}

// One thread's polish of one row at a time (buffers kept across rows).
class RowPolish {
 public:
  RowPolish(const PolishInputs& in, const ColumnInputs& x, const std::vector<double>& diagonal)
      : in_(in), layer_(*in.layer), x_(x), diagonal_(diagonal),
        groups_(GroupCount(layer_.cols, in.gptq->group_size)),
        grids_(static_cast<size_t>(groups_)), ranges_(static_cast<size_t>(layer_.cols)) {}

  // Polishes row r of `out` from its errors e (cols) and g = H e, both
  // kept up to date.
  void Run(int64_t r, double* e, double* g, QuantizedLayer* out) {
    const int64_t cols = layer_.cols, tokens = layer_.tokens, group = in_.gptq->group_size;
    uint8_t* codes = &out->codes[r * cols];
    start_errors_.assign(e, e + cols);
    moved_.assign(static_cast<size_t>(tokens), 0.0);
    start_residual_.assign(static_cast<size_t>(tokens), kUnknown);
    for (int64_t group_index = 0; group_index < groups_; ++group_index) {
      grids_[group_index] = GridAt(*out, r * groups_ + group_index, in_.gptq->bits);
    }
    for (int64_t c = 0; c < cols; ++c) {
      ranges_[c] = DmmvCodeRange(layer_.weights[r * cols + c], grids_[c / group],
                                 in_.gptq->codes[r * cols + c]);
    }
    StartResiduals(r, codes);
    for (int sweep = 0; sweep < kPolishSweeps; ++sweep) {
      int moves = 0;
      for (int64_t c0 = 0; c0 < cols; c0 += group) {
        const Grid& grid = grids_[c0 / group];
        for (int64_t c = c0; c < std::min(cols, c0 + group); ++c) {
          moves += Move(c, grid, e, g, codes);
        }
      }
      if (moves == 0) break;
    }
  }

 private:
  static constexpr double kUnknown = std::numeric_limits<double>::quiet_NaN();

  // Moves the row's code c one step on `grid` where that lowers the error
  // and fits the cap; 1 if it moved.
  int Move(int64_t c, const Grid& grid, double* e, double* g, uint8_t* codes) {
    const int64_t cols = layer_.cols;
    const int code = codes[c];
    const double h_cc = diagonal_[c], now = Dequantize(code, grid);
    double best_change = 0, best_delta = 0;
    int best_code = code;
    for (const int next : {code - 1, code + 1}) {
      if (next < ranges_[c].lowest || next > ranges_[c].highest) continue;
      const double delta = static_cast<double>(Dequantize(next, grid)) - now;
      const double change = delta * (2 * g[c] + delta * h_cc);
      if (change < best_change && change < -kLeastGain * delta * delta * h_cc) {
        best_change = change, best_delta = delta, best_code = next;
      }
    }
    if (best_code == code || !Fits(c, best_delta)) return 0;
    codes[c] = static_cast<uint8_t>(best_code);
    e[c] += best_delta;
    const double* h_c = in_.h->data() + c * cols;
    for (int64_t j = 0; j < cols; ++j) g[j] += best_delta * h_c[j];
    largest_ = MoveTokens(best_delta, Column(c), approximate_.data(), layer_.tokens, moved_.data());
    return 1;
  }

  // approximate_ = x_k . e0 from GPTQ's residuals, with the columns whose
  // codes the search moved added.
  void StartResiduals(int64_t r, const uint8_t* codes) {
    const int64_t cols = layer_.cols, tokens = layer_.tokens, group = in_.gptq->group_size;
    const float* gptq = in_.gptq_residuals + r * tokens;
    approximate_.assign(gptq, gptq + tokens);
    const uint8_t* gptq_codes = &in_.gptq->codes[r * cols];
    for (int64_t c = 0; c < cols; ++c) {
      if (codes[c] == gptq_codes[c]) continue;
      const Grid& grid = grids_[c / group];
      const double delta = static_cast<double>(Dequantize(codes[c], grid)) -
                           static_cast<double>(Dequantize(gptq_codes[c], grid));
      AddScaled(delta, Column(c), tokens, approximate_.data());
    }
    largest_ = 0;
    for (int64_t k = 0; k < tokens; ++k) largest_ = std::max(largest_, std::fabs(approximate_[k]));
  }

  // Whether every token's |x_k . e| stays within the cap after e_c moves
  // by delta.
  bool Fits(int64_t c, double delta) {
    const double cap = in_.cap, limit = (1 - kFloatMargin) * cap;
    if (largest_ + std::fabs(delta) * x_.largest[c] <= limit) return true;
    const int64_t tokens = layer_.tokens;
    const float* x_c = Column(c);
    for (int64_t k0 = 0; k0 < tokens; k0 += kTokensPerCheck) {
      const int64_t n = std::min(kTokensPerCheck, tokens - k0);
      if (LargestAfter(delta, x_c + k0, &approximate_[k0], &moved_[k0], n) <= limit) continue;
      for (int64_t k = k0; k < k0 + n; ++k) {
        const double moved = moved_[k] + delta * x_c[k];
        if (std::fabs(approximate_[k] + moved) <= limit) continue;
        if (std::isnan(start_residual_[k])) start_residual_[k] = StartResidual(k);
        if (std::fabs(start_residual_[k] + moved) > cap) return false;
      }
    }
    return true;
  }

  // x_k . e0, e0 the row's errors before the polish.
  double StartResidual(int64_t k) const {
    return Dot(&layer_.inputs[k * layer_.cols], start_errors_.data(), layer_.cols);
  }

  const float* Column(int64_t c) const { return &x_.by_column[c * layer_.tokens]; }

  const PolishInputs& in_;
  const Layer& layer_;
  const ColumnInputs& x_;
  const std::vector<double>& diagonal_;  // of H
  const int64_t groups_;
  std::vector<Grid> grids_;        // the row's, per group
  std::vector<CodeRange> ranges_;  // the row's, per column
  std::vector<double> start_errors_, moved_, start_residual_, approximate_;
  double largest_ = 0;  // max_k |approximate_k + moved_k|
};

}  // namespace

CodeRange DmmvCodeRange(float w, const Grid& grid, int gptq_code) {
  const int floor_code = static_cast<int>(
      Clamp(floorf(w / grid.scale) + grid.zero, 0, static_cast<float>(grid.maxq)));
  return CodeRange{std::min(floor_code, gptq_code),
                   std::max(std::min(floor_code + 1, grid.maxq), gptq_code)};
}

Status PolishOutputError(const PolishInputs& in, QuantizedLayer* out) {
  const Layer& layer = *in.layer;
  const int64_t rows = layer.rows, cols = layer.cols;
  const ColumnInputs x = ByColumns(layer, in.threads);
  std::vector<double> diagonal(static_cast<size_t>(cols));
  for (int64_t c = 0; c < cols; ++c) diagonal[c] = (*in.h)[c * cols + c];
  const int64_t tiles = (rows + kRowsPerTile - 1) / kRowsPerTile;
  ParallelFor(tiles, in.threads, [&](int64_t begin, int64_t end) {
    std::vector<double> e(static_cast<size_t>(kRowsPerTile * cols)), g(e.size());
    RowPolish polish(in, x, diagonal);
    for (int64_t tile = begin; tile < end && CheckCancel(in.cancel).ok(); ++tile) {
      const int64_t first = tile * kRowsPerTile, n = std::min(kRowsPerTile, rows - first);
      RoundingErrors(layer, *out, first, n, e.data());
      TileGradients(in.h->data(), cols, e.data(), n, g.data());
      for (int64_t i = 0; i < n; ++i) polish.Run(first + i, &e[i * cols], &g[i * cols], out);
    }
  }, 1);
  return CheckCancel(in.cancel);
}

}  // namespace solverd::quant::internal
