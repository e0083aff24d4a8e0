// The quant family's methods against float64 reference implementations
// written here from the methods' definitions, their ordering on the
// properties they promise (GPTQ below RTN on correlated inputs, dmmv's
// largest violation at or below RTN's, HQQ's zero points never worse than
// where they start), and CPU/CUDA agreement.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "cuda_test_util.h"
#include "quant/blockwise.h"
#include "quant/half.h"
#include "quant/quant.h"
#include "quant_test_util.h"

namespace solverd::quant {
namespace {

Options GridOptions(Method method, int bits, int64_t group) {
  Options o;
  o.method = method;
  o.bits = bits;
  o.group_size = group;
  return o;
}

double OutputError(const Layer& l, const QuantizedLayer& q, double* max_violation = nullptr) {
  LayerReport report;
  MeasureLayer(l, q, 1, &report);
  if (max_violation != nullptr) *max_violation = report.max_violation;
  return report.relative_output_error;
}

// Round to nearest from the definition, in float64: the grid spans
// [min(w, 0), max(w, 0)] with maxq steps, its scale stored in fp16.
std::vector<int> ReferenceRtn(const std::vector<float>& w, int bits, bool symmetric) {
  double lo = 0, hi = 0;
  for (const float v : w) lo = std::min<double>(lo, v), hi = std::max<double>(hi, v);
  if (symmetric) hi = std::max(-lo, hi), lo = -hi;
  const int maxq = (1 << bits) - 1;
  const double scale = RoundToHalf(static_cast<float>((hi - lo) / maxq));
  const double zero = symmetric ? (maxq + 1) / 2 : std::clamp(std::nearbyint(-lo / scale), 0.0,
                                                              double(maxq));
  std::vector<int> codes;
  for (const float v : w) {
    codes.push_back(static_cast<int>(std::clamp(std::nearbyint(v / scale) + zero, 0.0,
                                                double(maxq))));
  }
  return codes;
}

TEST(QuantRtn, MatchesTheReferencePerGroup) {
  const Layer l = MakeLayer(16, 40, 0, false, 1);
  for (const bool symmetric : {false, true}) {
    for (const int bits : {2, 3, 4, 8}) {
      Options o = GridOptions(Method::kRtn, bits, 16);
      o.symmetric = symmetric;
      const QuantizedLayer q = Quantize(l, o);
      for (int64_t r = 0; r < l.rows; ++r) {
        for (int64_t c0 = 0; c0 < l.cols; c0 += 16) {
          const int64_t n = std::min<int64_t>(16, l.cols - c0);
          const std::vector<float> w(&l.weights[r * l.cols + c0], &l.weights[r * l.cols + c0 + n]);
          const std::vector<int> ref = ReferenceRtn(w, bits, symmetric);
          for (int64_t i = 0; i < n; ++i) ASSERT_EQ(q.codes[r * l.cols + c0 + i], ref[i]);
        }
      }
    }
  }
}

TEST(QuantRtn, ClipSearchNeverIncreasesTheWeightError) {
  Layer l = MakeLayer(32, 128, 0, false, 2);
  l.weights[5] = 3.0f;  // an outlier the search can clip
  Options o = GridOptions(Method::kRtn, 3, 128);
  LayerReport plain, clipped;
  MeasureLayer(l, Quantize(l, o), 1, &plain);
  o.clip_search = true;
  MeasureLayer(l, Quantize(l, o), 1, &clipped);
  EXPECT_LT(clipped.weight_mse, plain.weight_mse);
}

// GPTQ in its original (OBQ) form, float64: after rounding column j, the
// remaining weights move by -err * Hinv[j][k] and Hinv loses row and
// column j by a rank-one downdate. No Cholesky.
std::vector<double> ReferenceGptqRow(const Layer& l, int64_t r, int bits, double damp) {
  const int64_t n = l.cols;
  std::vector<double> h(n * n, 0.0);
  for (int64_t t = 0; t < l.tokens; ++t) {
    for (int64_t a = 0; a < n; ++a) {
      for (int64_t b = 0; b < n; ++b) {
        h[a * n + b] += 2.0 * l.inputs[t * n + a] * l.inputs[t * n + b] / l.tokens;
      }
    }
  }
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += h[i * n + i] / n;
  for (int64_t i = 0; i < n; ++i) h[i * n + i] += damp * mean;
  // Gauss-Jordan inverse.
  std::vector<double> inv(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i) inv[i * n + i] = 1;
  for (int64_t c = 0; c < n; ++c) {
    const double p = h[c * n + c];
    for (int64_t k = 0; k < n; ++k) h[c * n + k] /= p, inv[c * n + k] /= p;
    for (int64_t i = 0; i < n; ++i) {
      if (i == c) continue;
      const double f = h[i * n + c];
      for (int64_t k = 0; k < n; ++k) {
        h[i * n + k] -= f * h[c * n + k];
        inv[i * n + k] -= f * inv[c * n + k];
      }
    }
  }
  std::vector<float> row(&l.weights[r * n], &l.weights[(r + 1) * n]);
  std::vector<double> w(row.begin(), row.end());
  double lo = 0, hi = 0;  // the row's grid, fixed before any feedback
  for (const float v : row) lo = std::min<double>(lo, v), hi = std::max<double>(hi, v);
  const int maxq = (1 << bits) - 1;
  const double scale = RoundToHalf(static_cast<float>((hi - lo) / maxq));
  const double zero = std::clamp(std::nearbyint(-lo / scale), 0.0, double(maxq));
  std::vector<double> q(n);
  for (int64_t j = 0; j < n; ++j) {
    q[j] = scale * (std::clamp(std::nearbyint(w[j] / scale) + zero, 0.0, double(maxq)) - zero);
    const double err = (w[j] - q[j]) / inv[j * n + j];
    for (int64_t k = j + 1; k < n; ++k) w[k] -= err * inv[j * n + k];
    for (int64_t a = j + 1; a < n; ++a) {
      for (int64_t b = j + 1; b < n; ++b) {
        inv[a * n + b] -= inv[a * n + j] * inv[j * n + b] / inv[j * n + j];
      }
    }
  }
  return q;
}

TEST(QuantGptq, MatchesTheObqReference) {
  const Layer l = MakeLayer(8, 24, 96, true, 3);
  const Options o = GridOptions(Method::kGptq, 3, 0);
  const QuantizedLayer q = Quantize(l, o);
  QuantizedLayer ref;
  ref.dequantized.resize(l.rows * l.cols);
  int64_t same = 0;
  for (int64_t r = 0; r < l.rows; ++r) {
    const std::vector<double> row = ReferenceGptqRow(l, r, 3, o.damp);
    for (int64_t c = 0; c < l.cols; ++c) {
      ref.dequantized[r * l.cols + c] = static_cast<float>(row[c]);
      same += std::fabs(row[c] - q.dequantized[r * l.cols + c]) < 1e-6;
    }
  }
  EXPECT_GE(same, l.rows * l.cols * 97 / 100);
  EXPECT_NEAR(OutputError(l, q), OutputError(l, ref), 0.02 * OutputError(l, ref));
}

TEST(QuantGptq, BeatsRtnOnCorrelatedInputs) {
  for (const int bits : {3, 4}) {
    for (const bool act_order : {false, true}) {
      const Layer l = MakeLayer(48, 128, 512, true, 10 + bits);
      Options o = GridOptions(Method::kGptq, bits, 32);
      o.act_order = act_order;
      const double gptq = OutputError(l, Quantize(l, o));
      const double rtn = OutputError(l, Quantize(l, GridOptions(Method::kRtn, bits, 32)));
      EXPECT_LT(gptq, 0.8 * rtn) << bits << " bits, act_order " << act_order;
    }
  }
}

TEST(QuantGptq, DeadInputsAndCancellation) {
  Layer l = MakeLayer(4, 16, 64, true, 4);
  for (int64_t t = 0; t < l.tokens; ++t) l.inputs[t * 16 + 3] = 0;  // input 3 always zero
  const QuantizedLayer q = Quantize(l, GridOptions(Method::kGptq, 4, 0));
  for (int64_t r = 0; r < l.rows; ++r) EXPECT_EQ(q.dequantized[r * 16 + 3], 0.0f);
  CancelToken cancel;
  cancel.Cancel();
  QuantizedLayer out;
  EXPECT_EQ(QuantizeLayer(Device::Cpu(), nullptr, l, GridOptions(Method::kGptq, 4, 0), &cancel,
                          &out).code(),
            StatusCode::kCancelled);
}

TEST(QuantDmmv, LowersTheLargestViolationGptqLeaves) {
  for (const int bits : {3, 4}) {
    const Layer l = MakeLayer(12, 32, 64, true, 20 + bits);
    Options o = GridOptions(Method::kDmmv, bits, 0);
    o.dmmv_time_limit_seconds = 60;  // the rounds, not the clock, end it
    double dmmv_t = 0, gptq_t = 0, rtn_t = 0;
    const QuantizedLayer dmmv = Quantize(l, o);
    const QuantizedLayer gptq = Quantize(l, GridOptions(Method::kGptq, bits, 0));
    OutputError(l, dmmv, &dmmv_t);
    OutputError(l, gptq, &gptq_t);
    OutputError(l, Quantize(l, GridOptions(Method::kRtn, bits, 0)), &rtn_t);
    EXPECT_LT(dmmv_t, gptq_t) << bits;
    EXPECT_LT(dmmv_t, rtn_t) << bits;
    EXPECT_EQ(dmmv.scales, gptq.scales) << "GPTQ's grids";
  }
}

// max_k |x_k . (w_r - q_r)| of row r, from the dequantized weights.
double RowViolation(const Layer& l, const QuantizedLayer& q, int64_t r) {
  double t = 0;
  for (int64_t k = 0; k < l.tokens; ++k) {
    double d = 0;
    for (int64_t c = 0; c < l.cols; ++c) {
      d += double{l.inputs[k * l.cols + c]} *
           (double{l.weights[r * l.cols + c]} - q.dequantized[r * l.cols + c]);
    }
    t = std::max(t, std::fabs(d));
  }
  return t;
}

TEST(QuantDmmv, EndsBelowGptqsOutputErrorWithinTheLargestViolationItReached) {
  const Layer l = MakeLayer(48, 32, 64, true, 9);
  Options o = GridOptions(Method::kDmmv, 3, 0);
  o.dmmv_time_limit_seconds = 60;
  const QuantizedLayer dmmv = Quantize(l, o);
  const QuantizedLayer gptq = Quantize(l, GridOptions(Method::kGptq, 3, 0));
  double largest = 0, dmmv_largest = 0;
  for (int64_t r = 0; r < l.rows; ++r) {
    largest = std::max(largest, RowViolation(l, gptq, r));
    dmmv_largest = std::max(dmmv_largest, RowViolation(l, dmmv, r));
  }
  EXPECT_LT(dmmv_largest, largest);
  // The polish's work (without it the searched rows' error grew).
  EXPECT_LT(OutputError(l, dmmv), OutputError(l, gptq));
}

TEST(QuantBlockwise, MatchesTheNearestEntryReference) {
  const Layer l = MakeLayer(6, 50, 0, false, 5);
  for (const Method method : {Method::kNf4, Method::kInt8Blockwise}) {
    Options o = GridOptions(method, method == Method::kNf4 ? 4 : 8, 64);
    const QuantizedLayer q = Quantize(l, o);
    const std::vector<float>& book = CodebookFor(method);
    for (int64_t i = 0; i < l.rows * l.cols; ++i) {
      double absmax = 0;
      for (int64_t k = (i / 64) * 64; k < std::min<int64_t>(300, (i / 64 + 1) * 64); ++k) {
        absmax = std::max<double>(absmax, std::fabs(l.weights[k]));
      }
      const double x = l.weights[i] / absmax;
      size_t best = 0;
      for (size_t k = 1; k < book.size(); ++k) {
        if (std::fabs(book[k] - x) < std::fabs(book[best] - x)) best = k;
      }
      ASSERT_EQ(q.codes[i], best) << MethodName(method) << " " << i;
    }
  }
  EXPECT_EQ(Nf4Codebook().size(), 16u);
  EXPECT_EQ(Nf4Codebook()[7], 0.0f);
}

TEST(QuantBlockwise, DoubleQuantStaysCloseToPlainAbsmax) {
  const Layer l = MakeLayer(64, 128, 0, false, 6);
  Options o = GridOptions(Method::kNf4, 4, 64);
  const QuantizedLayer plain = Quantize(l, o);
  o.double_quant = true;
  const QuantizedLayer dq = Quantize(l, o);
  ASSERT_EQ(dq.absmax_codes.size(), plain.absmax.size());
  for (size_t b = 0; b < plain.absmax.size(); ++b) {
    EXPECT_NEAR(dq.absmax[b], plain.absmax[b], 0.01 * plain.absmax[b]);
  }
  EXPECT_LT(OutputError(l, dq), 1.05 * OutputError(l, plain));
}

// Mean |w - q| per group, in float64, from the stored grid.
std::vector<double> GroupAbsErrors(const Layer& l, const QuantizedLayer& q) {
  const int64_t groups = (l.cols + q.group_size - 1) / q.group_size;
  std::vector<double> errors(static_cast<size_t>(l.rows * groups), 0.0);
  for (int64_t r = 0; r < l.rows; ++r) {
    for (int64_t c = 0; c < l.cols; ++c) {
      errors[r * groups + c / q.group_size] +=
          std::fabs(double(l.weights[r * l.cols + c]) - q.dequantized[r * l.cols + c]);
    }
  }
  return errors;
}

TEST(QuantHqq, CodesAreTheNearestLevelsOfTheStoredGrid) {
  const Layer l = MakeLayer(16, 96, 0, false, 11);
  const QuantizedLayer q = Quantize(l, GridOptions(Method::kHqq, 3, 32));
  const int64_t groups = 3;
  for (int64_t r = 0; r < l.rows; ++r) {
    for (int64_t c = 0; c < l.cols; ++c) {
      const double scale = q.scales[r * groups + c / 32], zero = q.zeros[r * groups + c / 32];
      EXPECT_EQ(scale, RoundToHalf(float(scale)));
      EXPECT_EQ(zero, RoundToHalf(float(zero)));
      const double w = l.weights[r * l.cols + c];
      const double x = w / scale + zero;
      if (std::fabs(x - std::floor(x) - 0.5) < 1e-4) continue;  // a float-rounding tie
      EXPECT_EQ(q.codes[r * l.cols + c], std::clamp(std::nearbyint(x), 0.0, 7.0)) << r << "," << c;
      EXPECT_FLOAT_EQ(q.dequantized[r * l.cols + c],
                      float(scale * (q.codes[r * l.cols + c] - zero)));
    }
  }
}

TEST(QuantHqq, NoGroupWorseThanRoundToNearestAndTheLayerBetter) {
  // Heavy-tailed weights (Student-t like), where the range's zero point is
  // poor and the sparse-error fit pays off. HQQ starts from RTN's grid.
  Layer l = MakeLayer(64, 256, 0, false, 12);
  std::mt19937 rng(13);
  std::chi_squared_distribution<float> chi(3);
  for (float& w : l.weights) w /= std::sqrt(chi(rng) / 3);
  for (const int bits : {3, 4}) {
    Options start = GridOptions(Method::kHqq, bits, 64);
    start.hqq_iterations = 0;
    const std::vector<double> before = GroupAbsErrors(l, Quantize(l, start));
    const std::vector<double> after =
        GroupAbsErrors(l, Quantize(l, GridOptions(Method::kHqq, bits, 64)));
    const std::vector<double> rtn =
        GroupAbsErrors(l, Quantize(l, GridOptions(Method::kRtn, bits, 64)));
    double sum_before = 0, sum_after = 0, sum_rtn = 0;
    for (size_t g = 0; g < after.size(); ++g) {
      EXPECT_LE(after[g], before[g] * (1 + 1e-5)) << "group " << g;
      sum_before += before[g];
      sum_after += after[g];
      sum_rtn += rtn[g];
    }
    EXPECT_LT(sum_after, 0.97 * sum_before) << bits << " bits";
    EXPECT_LT(sum_after, 0.97 * sum_rtn) << bits << " bits";
  }
}

TEST(QuantOptions, BadOptionsAndLayersAreRejected) {
  Layer l = MakeLayer(2, 4, 0, false, 7);
  QuantizedLayer q;
  EXPECT_EQ(QuantizeLayer(Device::Cpu(), nullptr, l, GridOptions(Method::kRtn, 9, 0), nullptr,
                          &q).message(), "bits: must be 2..8");
  EXPECT_EQ(QuantizeLayer(Device::Cpu(), nullptr, l, GridOptions(Method::kGptq, 4, 0), nullptr,
                          &q).message(),
            "inputs: method gptq needs calibration inputs or their Hessian");
  l.weights[1] = NAN;
  EXPECT_EQ(QuantizeLayer(Device::Cpu(), nullptr, l, GridOptions(Method::kRtn, 4, 0), nullptr,
                          &q).message(), "weights: entry 1 is not finite");
  Options hqq = GridOptions(Method::kHqq, 4, 0);
  hqq.symmetric = true;
  EXPECT_EQ(ValidateOptions(hqq).message(), "symmetric: hqq optimizes an asymmetric zero point");
  hqq.symmetric = false;
  hqq.hqq_iterations = -1;
  EXPECT_EQ(ValidateOptions(hqq).message(), "hqq_iterations: must be 0..1000");
}

TEST(QuantCuda, MatchesTheCpu) {
  SOLVERD_REQUIRE_CUDA();
  TestStream stream;
  ASSERT_TRUE(stream.status().ok());
  const Layer l = MakeLayer(64, 192, 256, true, 8);
  // Groups of 64 divide the 192 columns (staged through shared memory on
  // CUDA), groups of 80 do not (one thread per group, read in place).
  for (const int64_t group : {64, 80}) {
    for (const Method method :
         {Method::kRtn, Method::kHqq, Method::kNf4, Method::kInt8Blockwise}) {
      Options o = GridOptions(method, method == Method::kInt8Blockwise ? 8 : 4, group);
      o.clip_search = method == Method::kRtn;
      o.double_quant = method == Method::kNf4;
      const QuantizedLayer cpu = Quantize(l, o);
      const QuantizedLayer gpu = Quantize(l, o, Device::Cuda(0), stream.get());
      EXPECT_EQ(cpu.codes, gpu.codes) << MethodName(method) << ", group " << group;
      EXPECT_EQ(cpu.dequantized, gpu.dequantized) << MethodName(method) << ", group " << group;
    }
  }
  for (const bool act_order : {false, true}) {
    Options o = GridOptions(Method::kGptq, 4, 64);
    o.act_order = act_order;
    // Same Hessian sums, same factor, same feedback arithmetic: same codes.
    const QuantizedLayer cpu = Quantize(l, o);
    const QuantizedLayer gpu = Quantize(l, o, Device::Cuda(0), stream.get());
    EXPECT_EQ(cpu.codes, gpu.codes) << "act_order " << act_order;
    EXPECT_EQ(cpu.scales, gpu.scales) << "act_order " << act_order;
  }
  double gpu_t = 0, rtn_t = 0;
  OutputError(l, Quantize(l, GridOptions(Method::kDmmv, 4, 64), Device::Cuda(0), stream.get()),
              &gpu_t);
  OutputError(l, Quantize(l, GridOptions(Method::kRtn, 4, 64)), &rtn_t);
  EXPECT_LT(gpu_t, rtn_t);
}

}  // namespace
}  // namespace solverd::quant
