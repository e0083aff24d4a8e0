// The dmmv method's output error polish (quant/output_error_polish.h)
// against a reference written here from its definition: coordinate
// descent on |X (q - w)|^2 recomputed whole for every candidate move, in
// the same column order; and its cap, checked in float64 from the
// definition of a row's largest violation.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "quant/gptq_hessian.h"
#include "quant/output_error_polish.h"
#include "quant/quant_backend.h"
#include "quant_test_util.h"

namespace solverd::quant::internal {
namespace {

struct Case {
  Layer layer;
  QuantizedLayer gptq;
  std::vector<double> h;
  std::vector<float> gptq_residuals;  // rows x tokens
};

Options GptqOptions(int bits, int64_t group) {
  Options o;
  o.method = Method::kGptq;
  o.bits = bits;
  o.group_size = group;
  return o;
}

// x_k . (q_r - w_r) in float64 from `codes` on gptq's grids.
std::vector<double> RowResiduals(const Case& c, const std::vector<uint8_t>& codes, int64_t r) {
  const Layer& l = c.layer;
  const int64_t groups = GroupCount(l.cols, c.gptq.group_size);
  std::vector<double> residuals(static_cast<size_t>(l.tokens), 0.0);
  for (int64_t col = 0; col < l.cols; ++col) {
    const Grid g = GridAt(c.gptq, r * groups + col / c.gptq.group_size, c.gptq.bits);
    const double e = double{Dequantize(codes[r * l.cols + col], g)} - l.weights[r * l.cols + col];
    for (int64_t k = 0; k < l.tokens; ++k) residuals[k] += l.inputs[k * l.cols + col] * e;
  }
  return residuals;
}

double SumOfSquares(const std::vector<double>& v) {
  double s = 0;
  for (const double x : v) s += x * x;
  return s;
}

double Largest(const std::vector<double>& v) {
  double t = 0;
  for (const double x : v) t = std::max(t, std::fabs(x));
  return t;
}

Case MakeCase(int64_t rows, int64_t cols, int64_t tokens, int bits, uint32_t seed) {
  Case c;
  c.layer = MakeLayer(rows, cols, tokens, true, seed);
  c.gptq = Quantize(c.layer, GptqOptions(bits, 16));
  c.h = SumOfOuterProducts(c.layer.inputs.data(), tokens, cols, 1);
  for (int64_t r = 0; r < rows; ++r) {
    for (const double x : RowResiduals(c, c.gptq.codes, r)) {
      c.gptq_residuals.push_back(static_cast<float>(x));
    }
  }
  return c;
}

PolishInputs InputsOf(const Case& c, double cap) {
  PolishInputs in;
  in.layer = &c.layer;
  in.h = &c.h;
  in.gptq = &c.gptq;
  in.gptq_residuals = c.gptq_residuals.data();
  in.cap = cap;
  return in;
}

QuantizedLayer Polish(const Case& c, double cap, int threads = 1) {
  PolishInputs in = InputsOf(c, cap);
  in.threads = threads;
  QuantizedLayer out = c.gptq;
  const Status s = PolishOutputError(in, &out);
  EXPECT_TRUE(s.ok()) << s.message();
  return out;
}

// The reference: per row, kPolishSweeps sweeps over the columns; at each,
// the neighbouring code within DmmvCodeRange that lowers |X e|^2 most,
// each candidate's error recomputed from X.
std::vector<uint8_t> ReferencePolish(const Case& c) {
  const Layer& l = c.layer;
  const int64_t groups = GroupCount(l.cols, c.gptq.group_size);
  std::vector<uint8_t> codes = c.gptq.codes;
  for (int64_t r = 0; r < l.rows; ++r) {
    for (int sweep = 0; sweep < kPolishSweeps; ++sweep) {
      for (int64_t col = 0; col < l.cols; ++col) {
        const int64_t at = r * l.cols + col;
        const Grid g = GridAt(c.gptq, r * groups + col / c.gptq.group_size, c.gptq.bits);
        const CodeRange range = DmmvCodeRange(l.weights[at], g, c.gptq.codes[at]);
        const int code = codes[at];
        double best = SumOfSquares(RowResiduals(c, codes, r));
        int best_code = code;
        for (const int next : {code - 1, code + 1}) {
          if (next < range.lowest || next > range.highest) continue;
          codes[at] = static_cast<uint8_t>(next);
          const double error = SumOfSquares(RowResiduals(c, codes, r));
          if (error < best * (1 - 1e-9)) best = error, best_code = next;
        }
        codes[at] = static_cast<uint8_t>(best_code);
      }
    }
  }
  return codes;
}

TEST(QuantPolish, WithoutACapTakesTheReferencesMoves) {
  for (const int bits : {3, 4}) {
    // 37 columns: H e's last columns outside the 8-column blocks.
    for (const int64_t cols : {40, 37}) {
      const Case c = MakeCase(6, cols, 80, bits, 30 + bits);
      const QuantizedLayer polished = Polish(c, std::numeric_limits<double>::infinity());
      const std::vector<uint8_t> reference = ReferencePolish(c);
      EXPECT_NE(reference, c.gptq.codes) << "GPTQ leaves moves that lower the error";
      EXPECT_EQ(polished.codes, reference) << bits << " bits, " << cols << " columns";
    }
  }
}

TEST(QuantPolish, LowersEachRowsErrorAndKeepsItsLargestViolationWithinTheCap) {
  const Case c = MakeCase(24, 48, 16, 3, 1);
  const QuantizedLayer free = Polish(c, std::numeric_limits<double>::infinity());
  // The cap: the start of the row whose largest violation the free polish
  // raised most, so that rows start at or below it and one would pass it.
  std::vector<double> start(c.layer.rows);
  double cap = 0, most_raised = 0;
  for (int64_t r = 0; r < c.layer.rows; ++r) {
    start[r] = Largest(RowResiduals(c, c.gptq.codes, r));
    const double raised = Largest(RowResiduals(c, free.codes, r)) - start[r];
    if (raised > most_raised) most_raised = raised, cap = start[r];
  }
  ASSERT_GT(most_raised, 0) << "the free polish raises some row's largest violation";
  for (const int threads : {1, 2}) {
    const QuantizedLayer capped = Polish(c, cap, threads);
    EXPECT_NE(capped.codes, free.codes) << "the cap stops some move";
    int moved_rows = 0;
    for (int64_t r = 0; r < c.layer.rows; ++r) {
      const std::vector<double> after = RowResiduals(c, capped.codes, r);
      EXPECT_LE(SumOfSquares(after), SumOfSquares(RowResiduals(c, c.gptq.codes, r))) << r;
      if (start[r] <= cap) EXPECT_LE(Largest(after), cap) << "row " << r << ", " << threads;
      moved_rows += !std::equal(capped.codes.begin() + r * c.layer.cols,
                                capped.codes.begin() + (r + 1) * c.layer.cols,
                                c.gptq.codes.begin() + r * c.layer.cols);
    }
    EXPECT_GT(moved_rows, c.layer.rows / 2);
  }
}

TEST(QuantPolish, CodesStayBetweenGptqsAndTheGridValuesAroundTheWeight) {
  const Case c = MakeCase(8, 64, 64, 2, 11);
  const QuantizedLayer polished = Polish(c, std::numeric_limits<double>::infinity());
  const int64_t groups = GroupCount(c.layer.cols, c.gptq.group_size);
  for (int64_t at = 0; at < c.layer.rows * c.layer.cols; ++at) {
    const int64_t r = at / c.layer.cols, col = at % c.layer.cols;
    const Grid g = GridAt(c.gptq, r * groups + col / c.gptq.group_size, c.gptq.bits);
    const CodeRange range = DmmvCodeRange(c.layer.weights[at], g, c.gptq.codes[at]);
    EXPECT_GE(polished.codes[at], range.lowest) << at;
    EXPECT_LE(polished.codes[at], range.highest) << at;
    const double w = c.layer.weights[at] / g.scale + g.zero;
    EXPECT_LE(range.lowest, std::max(std::floor(w), 0.0));
    EXPECT_GE(range.highest, std::min(std::ceil(w), double{g.maxq}));
  }
}

TEST(QuantPolish, StopsWhenCancelled) {
  const Case c = MakeCase(16, 32, 32, 4, 5);
  CancelToken cancel;
  cancel.Cancel();
  PolishInputs in = InputsOf(c, std::numeric_limits<double>::infinity());
  in.cancel = &cancel;
  QuantizedLayer out = c.gptq;
  EXPECT_EQ(PolishOutputError(in, &out).code(), StatusCode::kCancelled);
  EXPECT_EQ(out.codes, c.gptq.codes);
}

}  // namespace
}  // namespace solverd::quant::internal
