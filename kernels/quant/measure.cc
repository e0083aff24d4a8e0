// MeasureLayer: the error figures of a quantized layer; Summarize: a model
// layer's summary of them.
#include <algorithm>
#include <cmath>
#include <random>

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

// Adds tokens [first, first + count) (count <= kTokensPerPass) of inputs x
// to one row's sums: its weights w and their quantization errors diff.
void AddTokens(const float* w, const double* diff, const float* x, int64_t first, int64_t count,
               int64_t cols, RowSums* sums) {
  double out[kTokensPerPass] = {}, err[kTokensPerPass] = {};
  const float* xt[kTokensPerPass];
  for (int64_t k = 0; k < kTokensPerPass; ++k) {
    xt[k] = &x[(first + std::min(k, count - 1)) * cols];  // past count: a repeat, unused
  }
  for (int64_t c = 0; c < cols; ++c) {
    const double wc = w[c], dc = diff[c];
    for (int64_t k = 0; k < kTokensPerPass; ++k) {
      out[k] += wc * xt[k][c];
      err[k] += dc * xt[k][c];
    }
  }
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
void AddRowsFromHessian(const Layer& layer, const double* diff, int64_t first, int64_t count,
                        RowSums* sums) {
  const int64_t cols = layer.cols;
  for (int64_t i = 0; i < cols; ++i) {
    const double* g = &layer.hessian[i * cols];
    for (int64_t k = 0; k < count; ++k) {
      const float* w = &layer.weights[(first + k) * cols];
      const double* d = &diff[k * cols];
      double gw = 0, gd = 0;
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
  ParallelFor(rows, threads, [&](int64_t begin, int64_t end) {
    std::vector<double> diff(static_cast<size_t>(cols));
    for (int64_t r = begin; r < end; ++r) {
      const float* w = &layer.weights[r * cols];
      for (int64_t c = 0; c < cols; ++c) {
        diff[c] = static_cast<double>(w[c]) - quantized.dequantized[r * cols + c];
      }
      for (int64_t t = 0; t < tokens; t += kTokensPerPass) {
        AddTokens(w, diff.data(), x, t, std::min(kTokensPerPass, tokens - t), cols, &sums[r]);
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
