// MeasureLayer: the error figures of a quantized layer; Summarize: a model
// layer's summary of them.
#include <algorithm>
#include <cmath>
#include <random>

#include "common/cpu_clones.h"
#include "common/parallel_for.h"
#include "quant/model.h"
#include "quant/quant.h"

namespace solverd::quant {
namespace {

// Without calibration data the output error is measured on these many
// standard Gaussian inputs, drawn from a fixed seed.
constexpr int64_t kStandInTokens = 128;
constexpr uint64_t kStandInSeed = 20240101;

std::vector<float> GaussianInputs(int64_t tokens, int64_t cols) {
  std::mt19937_64 rng(kStandInSeed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(tokens * cols));
  for (float& v : x) v = normal(rng);
  return x;
}

struct RowSums {
  double diff_sq = 0, out_sq = 0, max_violation = 0;
};

// Tokens one pass over a row serves: each weight and difference loaded
// feeds this many independent sums, where one token's pair of running sums
// waits on the add latency.
constexpr int64_t kTokensPerPass = 4;
// Rows whose passes share each group of tokens while it is in cache (row
// by row, every row streamed all of X from memory).
constexpr int64_t kRowsPerTile = 16;

// Adds tokens [first, first + count) (count <= kTokensPerPass) of inputs x
// to one row's sums: its weights w and their quantization errors diff.
// Vectorised over the columns (each token's sums in SIMD-lane order, not
// column order: these are reported figures, not codes): in column order
// the pass ran scalar and took longer than GPTQ on the test LM's layers.
SOLVERD_CPU_CLONES void AddTokens(const float* w, const double* diff, const float* x,
                                  int64_t first, int64_t count, int64_t cols, RowSums* sums) {
  static_assert(kTokensPerPass == 4, "one named sum per token below");
  const float* x0 = &x[first * cols];  // past count: a repeat, unused
  const float* x1 = &x[(first + std::min<int64_t>(1, count - 1)) * cols];
  const float* x2 = &x[(first + std::min<int64_t>(2, count - 1)) * cols];
  const float* x3 = &x[(first + std::min<int64_t>(3, count - 1)) * cols];
  double o0 = 0, o1 = 0, o2 = 0, o3 = 0, e0 = 0, e1 = 0, e2 = 0, e3 = 0;
#pragma omp simd reduction(+ : o0, o1, o2, o3, e0, e1, e2, e3)
  for (int64_t c = 0; c < cols; ++c) {
    const double wc = w[c], dc = diff[c];
    o0 += wc * x0[c];
    o1 += wc * x1[c];
    o2 += wc * x2[c];
    o3 += wc * x3[c];
    e0 += dc * x0[c];
    e1 += dc * x1[c];
    e2 += dc * x2[c];
    e3 += dc * x3[c];
  }
  const double out[kTokensPerPass] = {o0, o1, o2, o3}, err[kTokensPerPass] = {e0, e1, e2, e3};
  for (int64_t k = 0; k < count; ++k) {
    sums->diff_sq += err[k] * err[k];
    sums->out_sq += out[k] * out[k];
    sums->max_violation = std::max(sums->max_violation, std::fabs(err[k]));
  }
}

// Rows of a layer one pass over the Hessian serves, for the same reason.
constexpr int64_t kRowsPerPass = 4;

// The output error of rows [first, first + count) (count <= kRowsPerPass)
// from the Hessian G = sum_k x_k x_k^T alone: sum_k (x_k . d)^2 = d^T G d,
// and the same for the weights. `diff` holds the rows' errors.
SOLVERD_CPU_CLONES void AddRowsFromHessian(const Layer& layer, const double* diff,
                                           int64_t first, int64_t count, RowSums* sums) {
  const int64_t cols = layer.cols;
  for (int64_t i = 0; i < cols; ++i) {
    const double* g = &layer.hessian[i * cols];
    for (int64_t k = 0; k < count; ++k) {
      const float* w = &layer.weights[(first + k) * cols];
      const double* d = &diff[k * cols];
      double gw = 0, gd = 0;
#pragma omp simd reduction(+ : gw, gd)
      for (int64_t j = 0; j < cols; ++j) {
        gw += g[j] * w[j];
        gd += g[j] * d[j];
      }
      sums[k].out_sq += w[i] * gw;
      sums[k].diff_sq += d[i] * gd;
    }
  }
}

// Replaces the output error sums by the Hessian's, over all the tokens it
// summed rather than the sample of rows in `inputs`.
void MeasureWithHessian(const Layer& layer, const QuantizedLayer& quantized, int threads,
                        std::vector<RowSums>* sums) {
  const int64_t rows = layer.rows, cols = layer.cols;
  const int64_t passes = (rows + kRowsPerPass - 1) / kRowsPerPass;
  ParallelFor(passes, threads, [&](int64_t begin, int64_t end) {
    std::vector<double> diff(static_cast<size_t>(kRowsPerPass * cols));
    for (int64_t p = begin; p < end; ++p) {
      const int64_t first = p * kRowsPerPass, count = std::min(kRowsPerPass, rows - first);
      for (int64_t i = 0; i < count * cols; ++i) {
        diff[i] = static_cast<double>(layer.weights[first * cols + i]) -
                  quantized.dequantized[first * cols + i];
      }
      std::vector<RowSums> pass(static_cast<size_t>(count));
      AddRowsFromHessian(layer, diff.data(), first, count, pass.data());
      for (int64_t k = 0; k < count; ++k) {
        (*sums)[first + k].diff_sq = pass[k].diff_sq;
        (*sums)[first + k].out_sq = pass[k].out_sq;
      }
    }
  }, 1);
}

}  // namespace

void MeasureLayer(const Layer& layer, const QuantizedLayer& quantized, int threads,
                  LayerReport* report) {
  const int64_t rows = layer.rows, cols = layer.cols;
  double sq = 0, max_abs = 0;
  for (int64_t i = 0; i < rows * cols; ++i) {
    const double d = static_cast<double>(layer.weights[i]) - quantized.dequantized[i];
    sq += d * d;
    max_abs = std::max(max_abs, std::fabs(d));
  }
  report->weight_mse = sq / static_cast<double>(rows * cols);
  report->max_abs_error = max_abs;

  const bool calibrated = layer.tokens > 0;
  const int64_t tokens = calibrated ? layer.tokens : kStandInTokens;
  const std::vector<float> stand_in =
      calibrated ? std::vector<float>() : GaussianInputs(tokens, cols);
  const float* x = calibrated ? layer.inputs.data() : stand_in.data();
  std::vector<RowSums> sums(static_cast<size_t>(rows));
  const int64_t tiles = (rows + kRowsPerTile - 1) / kRowsPerTile;
  ParallelFor(tiles, threads, [&](int64_t begin, int64_t end) {
    std::vector<double> diff(static_cast<size_t>(kRowsPerTile * cols));
    for (int64_t tile = begin; tile < end; ++tile) {
      const int64_t first = tile * kRowsPerTile, last = std::min(rows, first + kRowsPerTile);
      for (int64_t i = 0; i < (last - first) * cols; ++i) {
        diff[i] = static_cast<double>(layer.weights[first * cols + i]) -
                  quantized.dequantized[first * cols + i];
      }
      for (int64_t t = 0; t < tokens; t += kTokensPerPass) {
        for (int64_t r = first; r < last; ++r) {
          AddTokens(&layer.weights[r * cols], &diff[(r - first) * cols], x, t,
                    std::min(kTokensPerPass, tokens - t), cols, &sums[r]);
        }
      }
    }
  }, 1);
  if (!layer.hessian.empty()) MeasureWithHessian(layer, quantized, threads, &sums);
  RowSums total;
  for (const RowSums& s : sums) {
    total.diff_sq += s.diff_sq;
    total.out_sq += s.out_sq;
    total.max_violation = std::max(total.max_violation, s.max_violation);
  }
  report->relative_output_error =
      total.out_sq > 0 ? std::sqrt(total.diff_sq / total.out_sq) : std::sqrt(total.diff_sq);
  report->max_violation = total.max_violation;
  report->output_error_squared = total.diff_sq;
}

void internal::Summarize(const TensorEntry& t, const Layer& layer, const QuantizedLayer& q,
                         int threads, double seconds, LayerSummary* summary) {
  summary->report.seconds = seconds;
  MeasureLayer(layer, q, threads, &summary->report);
  summary->name = t.name;
  summary->rows = layer.rows;
  summary->cols = layer.cols;
  summary->tokens = layer.hessian.empty() ? layer.tokens : layer.hessian_tokens;
  summary->bits = q.bits;
  summary->group_size = q.group_size;
  summary->bytes_before = t.end - t.begin;
}

}  // namespace solverd::quant
