// The dmmv method: GPTQ first (its grids, codes and H); then every weight
// may take any code from GPTQ's to the two grid values around the float
// weight, and the dmmv family's solver chooses among them to minimise the
// layer's largest violation max_{r,k} |x_k . (w_r - q_r)| over the
// calibration inputs (ties by the L2 of those violations), starting from
// GPTQ's codes, so it can only lower the largest violation GPTQ leaves.
// Only the rows whose violation is near the layer's largest are searched
// (dmmv::Options::max_over_instances), and only those at or above
// kSearchedShare of it are handed to the solver at all, the share lowered
// step by step while the search gets below it: each row handed over costs
// the solver's setup a pass over the inputs, and on the test LM the rows
// at 60% and above were most of some layers. Last, every row's output
// error is polished within the largest violation reached
// (output_error_polish.h): the searched rows' error had grown 2-5%, and
// GPTQ's own rows leave moves that lower it.
#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/cpu_clones.h"
#include "common/huge_page_array.h"
#include "common/parallel_for.h"
#include "dmmv/dmmv.h"
#include "quant/output_error_polish.h"
#include "quant/quant_backend.h"

namespace solverd::quant::internal {
namespace {

using Clock = std::chrono::steady_clock;

// Rows at or above this share of the layer's largest violation are searched
// first; below it, the largest stays out of their reach. Each time the
// search brings it below the share, the share is multiplied by itself and
// the search goes on with the rows above it, within the budget. (At 0.6,
// the rows' setup took the whole budget of the 1024-column layers of the
// test LM; at 0.8, a round that succeeded stopped just under 0.8.)
constexpr double kSearchedShare = 0.75;
// RowResiduals' tiles: rows of the layer whose errors stay in L2 while
// every token passes by, in passes of 2 rows x 4 tokens (8 running sums of
// 8 floats each: with the 6 loads they fill the 16 AVX2 registers).
constexpr int64_t kRowsPerTile = 32;
constexpr int64_t kRowsPerPass = 2;
constexpr int64_t kTokensPerPass = 4;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// x_k . e_r for every token k of rows r and r + 1 (`e` holds both, then
// `pair` of 1 or 2; x the inputs, tokens x cols), into residuals[0] and
// [1] (tokens each), and the largest |x_k . e_r| of each into largest.
SOLVERD_CPU_CLONES void PairResiduals(const float* x, const float* e, int64_t pair,
                                      int64_t tokens, int64_t cols, float* const residuals[2],
                                      double* largest) {
  const float* e1 = e + (pair - 1) * cols;  // the first row again when alone
  const auto token = [&](int64_t k) { return x + std::min(k, tokens - 1) * cols; };
  float largest0 = 0, largest1 = 0;
  for (int64_t k = 0; k < tokens; k += kTokensPerPass) {
    // Past the last token, the last again: it cannot change a maximum.
    const float *x0 = token(k), *x1 = token(k + 1), *x2 = token(k + 2), *x3 = token(k + 3);
    float s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
#pragma omp simd reduction(+ : s00, s01, s02, s03, s10, s11, s12, s13)
    for (int64_t c = 0; c < cols; ++c) {
      s00 += e[c] * x0[c];
      s01 += e[c] * x1[c];
      s02 += e[c] * x2[c];
      s03 += e[c] * x3[c];
      s10 += e1[c] * x0[c];
      s11 += e1[c] * x1[c];
      s12 += e1[c] * x2[c];
      s13 += e1[c] * x3[c];
    }
    const float sums[2][kTokensPerPass] = {{s00, s01, s02, s03}, {s10, s11, s12, s13}};
    for (int64_t i = 0; i < pair; ++i) {
      for (int64_t j = 0; j < std::min(kTokensPerPass, tokens - k); ++j) {
        residuals[i][k + j] = sums[i][j];
      }
    }
    largest0 = std::max({largest0, std::fabs(s00), std::fabs(s01), std::fabs(s02),
                         std::fabs(s03)});
    largest1 = std::max({largest1, std::fabs(s10), std::fabs(s11), std::fabs(s12),
                         std::fabs(s13)});
  }
  largest[0] = largest0;
  if (pair == 2) largest[1] = largest1;
}

// x_k . e_r for every row r and token k, and max_k |x_k . e_r|, to choose
// the rows to search and to start the polish's bounds: in float, whose
// relative 1e-6 cannot matter to that choice (the polish checks exactly
// near its cap), and by tiles (6.6x faster than a double dot product per
// row and token, which took as long as GPTQ itself on the test LM's
// layers).
struct Residuals {
  std::vector<double> largest;    // per row
  HugePageArray<float> by_row;    // rows x tokens
};

Residuals RowResiduals(const Layer& layer, const std::vector<double>& e, int threads) {
  const int64_t rows = layer.rows, cols = layer.cols, tokens = layer.tokens;
  Residuals out;
  out.largest.assign(static_cast<size_t>(rows), 0.0);
  out.by_row = HugePageArray<float>(rows * tokens);
  const int64_t tiles = (rows + kRowsPerTile - 1) / kRowsPerTile;
  ParallelFor(tiles, threads, [&](int64_t begin, int64_t end) {
    std::vector<float> errors(static_cast<size_t>(kRowsPerTile * cols));
    for (int64_t tile = begin; tile < end; ++tile) {
      const int64_t first = tile * kRowsPerTile, last = std::min(rows, first + kRowsPerTile);
      std::copy(e.begin() + first * cols, e.begin() + last * cols, errors.begin());
      for (int64_t r = first; r < last; r += kRowsPerPass) {
        const int64_t pair = std::min(kRowsPerPass, last - r);
        float* const residuals[2] = {&out.by_row[r * tokens],
                                     &out.by_row[(r + pair - 1) * tokens]};
        PairResiduals(layer.inputs.data(), &errors[(r - first) * cols], pair, tokens, cols,
                      residuals, &out.largest[r]);
      }
    }
  }, 1);
  return out;
}

// One dmmv instance per listed row over the codes GPTQ's allow (see the
// file comment), started from `codes`; lowest_codes[r * cols + c] is the
// code of level index 0.
// `inputs` is moved into the problem as its X.
dmmv::Problem BuildProblem(const Layer& layer, const QuantizedLayer& gptq,
                           const std::vector<uint8_t>& codes, const std::vector<int64_t>& rows,
                           std::vector<double>* inputs, std::vector<int>* lowest_codes) {
  const int64_t cols = layer.cols, tokens = layer.tokens;
  const int64_t groups = GroupCount(cols, gptq.group_size);
  dmmv::Problem p;
  p.rows = tokens;
  p.cols = cols;
  p.x = std::move(*inputs);
  p.instances.resize(rows.size());
  lowest_codes->resize(static_cast<size_t>(layer.rows * cols));
  for (size_t i = 0; i < rows.size(); ++i) {
    const int64_t r = rows[i];
    // The variables are the rounding errors q - w, so b = 0: no X w to form
    // (it cost as much as the search's first pass), and no cancellation.
    dmmv::Instance& inst = p.instances[i];
    inst.b.assign(static_cast<size_t>(tokens), 0.0);
    const float* w = &layer.weights[r * cols];
    inst.levels.resize(static_cast<size_t>(cols));
    inst.start_levels.resize(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c) {
      const Grid g = GridAt(gptq, r * groups + c / gptq.group_size, gptq.bits);
      const CodeRange range = DmmvCodeRange(w[c], g, gptq.codes[r * cols + c]);
      const int lo = range.lowest, hi = range.highest;
      (*lowest_codes)[r * cols + c] = lo;
      // Codes come back from level indices (lo + index), never from values.
      dmmv::Levels& levels = inst.levels[c];
      levels.lo = static_cast<double>(Dequantize(lo, g)) - w[c];
      levels.step = g.scale;
      levels.count = hi - lo + 1;
      inst.start_levels[c] = codes[r * cols + c] - lo;
    }
  }
  return p;
}

// Searches the listed rows from out's codes and stores what it finds there
// and their violations.
Status SearchRows(const Device& device, StreamHandle stream, const Layer& layer,
                  const QuantizedLayer& gptq, const std::vector<int64_t>& rows,
                  const dmmv::Options& options, const CancelToken* cancel,
                  std::vector<double>* inputs, std::vector<double>* violation,
                  QuantizedLayer* out) {
  const int64_t cols = layer.cols;
  std::vector<int> lowest_codes;
  dmmv::Problem problem = BuildProblem(layer, gptq, out->codes, rows, inputs, &lowest_codes);
  dmmv::Result result;
  const Status s = dmmv::Solve(device, stream, problem, options, nullptr, cancel, &result);
  *inputs = std::move(problem.x);  // for the next search
  SOLVERD_RETURN_IF_ERROR(s);
  for (size_t i = 0; i < rows.size(); ++i) {
    const int64_t r = rows[i];
    const std::vector<int64_t>& chosen = result.instances[i].level_indices;
    for (int64_t c = 0; c < cols; ++c) {
      out->codes[r * cols + c] = static_cast<uint8_t>(lowest_codes[r * cols + c] + chosen[c]);
    }
    (*violation)[r] = result.instances[i].max_violation;
  }
  return Status::Ok();
}

// The min-max search: rows from kSearchedShare of the layer's largest
// violation up, the share lowered while the search gets below it, until
// `deadline`. Leaves out's codes and `violation` at what it reached.
Status SearchLargest(const Device& device, StreamHandle stream, const Layer& layer,
                     const QuantizedLayer& gptq, const Options& options,
                     Clock::time_point deadline, const CancelToken* cancel,
                     std::vector<double>* violation, QuantizedLayer* out) {
  std::vector<double> inputs(layer.inputs.begin(), layer.inputs.end());
  const double largest = *std::max_element(violation->begin(), violation->end());
  dmmv::Options search;
  search.max_outer_iterations = options.dmmv_outer_iterations;
  search.threads = options.threads;
  search.max_over_instances = true;
  for (double share = kSearchedShare;; share *= kSearchedShare) {
    std::vector<int64_t> rows;
    for (int64_t r = 0; r < layer.rows; ++r) {
      if ((*violation)[r] >= share * largest) rows.push_back(r);
    }
    if (rows.empty()) return Status::Ok();  // every row is below the share already
    search.time_limit_seconds =
        std::max(1e-3, std::chrono::duration<double>(deadline - Clock::now()).count());
    SOLVERD_RETURN_IF_ERROR(SearchRows(device, stream, layer, gptq, rows, search, cancel, &inputs,
                                       violation, out));
    double searched_largest = 0;
    for (int64_t r : rows) searched_largest = std::max(searched_largest, (*violation)[r]);
    if (searched_largest >= share * largest || rows.size() == static_cast<size_t>(layer.rows) ||
        Clock::now() >= deadline) {
      return Status::Ok();
    }
  }
}

}  // namespace

Status DmmvRounding(const Device& device, StreamHandle stream, const Layer& layer,
                    const Options& options, const CancelToken* cancel, QuantizedLayer* out) {
  Options gptq_options = options;
  gptq_options.method = Method::kGptq;
  std::vector<double> h;
  SOLVERD_RETURN_IF_ERROR(Gptq(device, stream, layer, gptq_options, cancel, out, &h));
  // The budget is wall time after GPTQ, setup included, in units of the
  // pass below over the layer's products X (Q - W)^T: the searches' work is
  // linear in the rows, tokens and columns, where GPTQ's time grows with
  // the square of the columns (a budget in GPTQ's time left the 256-column
  // layers of the test LM 10-20 ms and no lower violation).
  const Clock::time_point after_gptq = Clock::now();
  const QuantizedLayer gptq = *out;
  std::vector<double> errors(static_cast<size_t>(layer.rows * layer.cols));
  RoundingErrors(layer, gptq, 0, layer.rows, errors.data());
  Residuals residuals = RowResiduals(layer, errors, options.threads);
  std::vector<double>& violation = residuals.largest;
  const double budget = options.dmmv_time_limit_seconds > 0
                            ? options.dmmv_time_limit_seconds
                            : kDmmvBudgetInPasses * Seconds(after_gptq);
  const auto deadline = after_gptq + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(budget));
  SOLVERD_RETURN_IF_ERROR(SearchLargest(device, stream, layer, gptq, options, deadline, cancel,
                                        &violation, out));
  PolishInputs polish;
  polish.layer = &layer;
  polish.h = &h;
  polish.gptq = &gptq;
  polish.gptq_residuals = residuals.by_row.data();
  polish.cap = *std::max_element(violation.begin(), violation.end());
  polish.threads = options.threads;
  polish.cancel = cancel;
  SOLVERD_RETURN_IF_ERROR(PolishOutputError(polish, out));
  DequantizeGrid(layer.rows, layer.cols, options.threads, out);
  return Status::Ok();
}

}  // namespace solverd::quant::internal
