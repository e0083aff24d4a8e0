// Calibration as a Hessian (sum of x x^T) instead of the inputs: GPTQ gets
// the same codes from a Hessian summed in its own order as from the inputs
// themselves, the output error is the same figure, bad Hessians are named
// with the reason, and layers that read one input share one entry.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "quant/calibration.h"
#include "quant/formats/safetensors.h"
#include "quant/gptq_hessian.h"
#include "quant/gptq_math.h"
#include "quant/model.h"
#include "quant_test_util.h"

namespace solverd::quant {
namespace {

// sum_t x_t x_t^T, each entry summed as GPTQ sums X^T X.
std::vector<double> SumOfOuterProducts(const Layer& l) {
  std::vector<double> h(static_cast<size_t>(l.cols * l.cols));
  for (int64_t a = 0; a < l.cols; ++a) {
    for (int64_t b = 0; b < l.cols; ++b) {
      h[a * l.cols + b] = internal::HessianDot(&l.inputs[a], &l.inputs[b], l.tokens, l.cols);
    }
  }
  return h;
}

// `l` with its inputs replaced by their Hessian, keeping `sample` rows.
Layer WithHessian(const Layer& l, int64_t sample = 0) {
  Layer h = l;
  h.hessian = SumOfOuterProducts(l);
  h.hessian_tokens = l.tokens;
  h.tokens = sample;
  h.inputs.resize(static_cast<size_t>(sample * l.cols));
  return h;
}

Options Gptq(int bits, int64_t group) {
  Options o;
  o.method = Method::kGptq;
  o.bits = bits;
  o.group_size = group;
  return o;
}

TEST(QuantHessian, GptqFromTheHessianGivesTheCodesOfItsInputs) {
  const Layer l = MakeLayer(48, 256, 300, true, 21);
  const Layer h = WithHessian(l);
  ASSERT_TRUE(h.inputs.empty());
  for (const int variant : {0, 1, 2}) {  // plain, act-order, K-quant
    Options o = Gptq(variant == 2 ? 4 : 3, 64);
    o.act_order = variant == 1;
    o.k_quant = variant == 2;
    const QuantizedLayer from_inputs = Quantize(l, o);
    const QuantizedLayer from_hessian = Quantize(h, o);
    EXPECT_EQ(from_inputs.codes, from_hessian.codes) << "variant " << variant;
    EXPECT_EQ(from_inputs.dequantized, from_hessian.dequantized) << "variant " << variant;
  }
}

// A Hessian stored as F32 (half the bytes) rounds every entry: the codes
// may move, the output error by far less than GPTQ's gain over RTN.
TEST(QuantHessian, AFloat32HessianLosesNothingThatMatters) {
  const Layer l = MakeLayer(48, 256, 300, true, 22);
  Layer h = WithHessian(l);
  for (double& v : h.hessian) v = static_cast<float>(v);
  const Options o = Gptq(3, 64);
  LayerReport exact, rounded, rtn;
  MeasureLayer(l, Quantize(l, o), 1, &exact);
  MeasureLayer(l, Quantize(h, o), 1, &rounded);
  Options r = o;
  r.method = Method::kRtn;
  MeasureLayer(l, Quantize(l, r), 1, &rtn);
  EXPECT_NEAR(rounded.relative_output_error, exact.relative_output_error,
              0.01 * exact.relative_output_error);
  EXPECT_LT(rounded.relative_output_error, 0.9 * rtn.relative_output_error);
}

TEST(QuantHessian, TheOutputErrorIsTheInputsFigure) {
  const Layer l = MakeLayer(37, 96, 200, true, 23);  // rows not a multiple of 4
  Options o;
  o.bits = 3;
  o.group_size = 32;
  const QuantizedLayer q = Quantize(l, o);
  LayerReport from_inputs, from_hessian;
  MeasureLayer(l, q, 2, &from_inputs);
  MeasureLayer(WithHessian(l, 200), q, 2, &from_hessian);
  EXPECT_NEAR(from_hessian.relative_output_error, from_inputs.relative_output_error,
              1e-9 * from_inputs.relative_output_error);
  EXPECT_NEAR(from_hessian.output_error_squared, from_inputs.output_error_squared,
              1e-9 * from_inputs.output_error_squared);
  EXPECT_EQ(from_hessian.max_violation, from_inputs.max_violation) << "from the same rows";
}

TEST(QuantHessian, BadHessiansAreRejectedSayingWhy) {
  const Layer good = WithHessian(MakeLayer(8, 16, 40, true, 24));
  const auto message = [](const Layer& l) {
    const Status s = ValidateLayer(l, Gptq(4, 16));
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    return s.message();
  };
  EXPECT_TRUE(ValidateLayer(good, Gptq(4, 16)).ok());
  Layer bad = good;
  bad.hessian.pop_back();
  EXPECT_EQ(message(bad), "hessian: shape must be [16, 16]");
  bad = good;
  bad.hessian_tokens = 0;
  EXPECT_EQ(message(bad), "hessian: the count of tokens it sums over must be positive");
  bad = good;
  bad.hessian[3 * 16 + 1] += 1;
  EXPECT_EQ(message(bad), "hessian: not symmetric at [3][1]");
  bad = good;
  bad.hessian[5 * 16 + 5] = -1;
  EXPECT_EQ(message(bad), "hessian: diagonal entry 5 is negative or not finite: not a sum of "
                          "x x^T");
  bad = good;
  const double big = 2 * std::sqrt(bad.hessian[2 * 16 + 2] * bad.hessian[7 * 16 + 7]);
  bad.hessian[7 * 16 + 2] = bad.hessian[2 * 16 + 7] = big;
  EXPECT_EQ(message(bad), "hessian: not positive semidefinite: |H[7][2]| exceeds "
                          "sqrt(H[i][i] H[j][j])");
  Options dmmv = Gptq(4, 16);
  dmmv.method = Method::kDmmv;
  EXPECT_EQ(ValidateLayer(good, dmmv).message(),
            "inputs: method dmmv needs calibration inputs (rows of x; with a Hessian, a sample "
            "of them)");
}

std::string Bytes(const std::vector<double>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(double));
}

std::string Count(int64_t n) { return std::string(reinterpret_cast<const char*>(&n), 8); }

// q and k read one input, o another: the brace-named entry serves q and k.
struct Block {
  std::string model, inputs, shared;
};
Block MakeBlock() {
  const Layer q = MakeLayer(32, 64, 120, true, 31), o = MakeLayer(64, 64, 120, true, 32);
  const std::vector<float> k_weights = Random(48 * 64, 33, 0.1f);
  SafetensorsWriter model, inputs, shared;
  model.Add("blk.attn.q.weight", DType::kF32, {32, 64}, FloatsToBytes(q.weights));
  model.Add("blk.attn.k.weight", DType::kF32, {48, 64}, FloatsToBytes(k_weights));
  model.Add("blk.attn.o.weight", DType::kF32, {64, 64}, FloatsToBytes(o.weights));
  for (const char* name : {"blk.attn.q.inputs", "blk.attn.k.inputs"}) {
    inputs.Add(name, DType::kF32, {120, 64}, FloatsToBytes(q.inputs));
  }
  inputs.Add("blk.attn.o.inputs", DType::kF32, {120, 64}, FloatsToBytes(o.inputs));
  shared.Add("blk.attn.{q,k}.hessian", DType::kF64, {64, 64}, Bytes(SumOfOuterProducts(q)));
  shared.Add("blk.attn.{q,k}.tokens", DType::kI64, {}, Count(120));
  shared.Add("blk.attn.o.hessian", DType::kF64, {64, 64}, Bytes(SumOfOuterProducts(o)));
  shared.Add("blk.attn.o.tokens", DType::kI64, {1}, Count(120));
  return {model.Finish(), inputs.Finish(), shared.Finish()};
}

Status QuantizeFile(const std::string& model, const std::string& calibration,
                    const ModelOptions& options, ModelResult* result) {
  ModelPlan plan;
  SOLVERD_RETURN_IF_ERROR(PlanModel(model, calibration, options, &plan));
  return QuantizeModel(Device::Cpu(), nullptr, plan, options, nullptr, nullptr, result);
}

TEST(QuantHessian, LayersReadingOneInputShareOneEntry) {
  const Block b = MakeBlock();
  ModelOptions options;
  options.layer = Gptq(4, 32);
  ModelResult from_inputs, from_hessians;
  ASSERT_TRUE(QuantizeFile(b.model, b.inputs, options, &from_inputs).ok());
  const Status s = QuantizeFile(b.model, b.shared, options, &from_hessians);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(from_inputs.file == from_hessians.file) << "the same codes, the same file";
  ASSERT_EQ(from_hessians.layers.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(from_hessians.layers[i].report.relative_output_error,
                from_inputs.layers[i].report.relative_output_error, 1e-9);
  }
}

TEST(QuantHessian, CalibrationFilesAreCheckedBeforeAnyWork) {
  const Block b = MakeBlock();
  SafetensorsFile parsed;
  ASSERT_TRUE(ParseSafetensors(b.shared, &parsed).ok());
  const CalibrationEntries k = FindCalibration(parsed, "blk.attn.k");
  ASSERT_NE(k.hessian, nullptr);
  EXPECT_EQ(k.hessian->name, "blk.attn.{q,k}.hessian");
  EXPECT_EQ(k.tokens->name, "blk.attn.{q,k}.tokens");
  EXPECT_TRUE(FindCalibration(parsed, "blk.attn.v").empty());
  EXPECT_TRUE(FindCalibration(parsed, "blk.attn.qk").empty());

  const auto plan_error = [&](const std::string& calibration, Method method) {
    ModelOptions options;
    options.layer = Gptq(4, 32);
    options.layer.method = method;
    ModelPlan plan;
    const Status s = PlanModel(b.model, calibration, options, &plan);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    return s.message();
  };
  SafetensorsWriter no_count;
  no_count.Add("blk.attn.{q,k,o}.hessian", DType::kF64, {64, 64},
               Bytes(std::vector<double>(64 * 64, 0.0)));
  EXPECT_EQ(plan_error(no_count.Finish(), Method::kGptq),
            "calibration: tensor \"blk.attn.{q,k,o}.hessian\" needs its count of tokens, an "
            "integer tensor \"blk.attn.{q,k,o}.tokens\"");
  SafetensorsWriter wrong;
  wrong.Add("blk.attn.q.hessian", DType::kF32, {64, 32}, std::string(64 * 32 * 4, '\0'));
  EXPECT_EQ(plan_error(wrong.Finish(), Method::kGptq),
            "calibration: tensor \"blk.attn.q.hessian\" must be an F32 or F64 [64, 64] matrix, "
            "the sum of x x^T of \"blk.attn.q.weight\"'s inputs");
  EXPECT_EQ(plan_error(b.shared, Method::kDmmv),
            "calibration: method dmmv needs rows of inputs, tensor \"blk.attn.q.inputs\" for "
            "\"blk.attn.q.weight\" (with a Hessian, a sample of rows is enough)");

  // Values are checked as the layer is loaded, naming the tensor.
  SafetensorsWriter asymmetric;
  std::vector<double> h(64 * 64, 0.0);
  for (int i = 0; i < 64; ++i) h[i * 64 + i] = 1;
  h[1] = 0.5;
  for (const char* name : {"blk.attn.{q,k}", "blk.attn.o"}) {
    asymmetric.Add(std::string(name) + ".hessian", DType::kF64, {64, 64}, Bytes(h));
    asymmetric.Add(std::string(name) + ".tokens", DType::kI32, {},
                   std::string("\x0a\0\0\0", 4));
  }
  ModelOptions options;
  options.layer = Gptq(4, 32);
  ModelResult result;
  const Status s = QuantizeFile(b.model, asymmetric.Finish(), options, &result);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "calibration: tensor \"blk.attn.{q,k}.hessian\": hessian: not "
                         "symmetric at [1][0]");
}

// LAPACK (when the build has it) and the loops compute the same factor to
// rounding; either way U^T U is H^-1.
TEST(QuantHessian, TheLibraryFactorIsTheLoops) {
  const Layer l = MakeLayer(1, 300, 400, true, 26);
  std::vector<double> h = internal::Hessian(l.inputs.data(), l.tokens, l.cols, 2);
  std::vector<uint8_t> dead;
  internal::DampHessian(0.01, l.cols, &h, &dead);
  std::vector<double> library = h, loops = h;
  ASSERT_TRUE(internal::InverseCholeskyUpper(l.cols, 2, &library).ok());
  ASSERT_TRUE(internal::InverseCholeskyUpper(l.cols, 2, &loops,
                                             internal::Factorization::kHandRolled).ok());
  const int64_t n = l.cols;
  double largest = 0, difference = 0, identity_error = 0;
  for (int64_t i = 0; i < n * n; ++i) {
    largest = std::max(largest, std::fabs(loops[i]));
    difference = std::max(difference, std::fabs(library[i] - loops[i]));
  }
  for (int64_t i = 0; i < n; ++i) {  // (U^T U H)[i][j] = delta_ij
    for (int64_t j = 0; j < n; j += 37) {
      double sum = 0;
      for (int64_t k = 0; k < n; ++k) {
        double uu = 0;  // (U^T U)[i][k]
        for (int64_t m = 0; m <= std::min(i, k); ++m) uu += library[m * n + i] * library[m * n + k];
        sum += uu * h[k * n + j];
      }
      identity_error = std::max(identity_error, std::fabs(sum - (i == j)));
    }
  }
  EXPECT_LT(difference, 1e-10 * largest) << (internal::HaveLapack() ? "LAPACK" : "loops only");
  EXPECT_LT(identity_error, 1e-8);
  for (int64_t i = 1; i < n; ++i) EXPECT_EQ(library[i * n], 0.0) << "zero below the diagonal";
}

// The tiled sums (4 x 8 entries over blocks of 128 tokens, the rest one by
// one) add each entry's products in token order, as HessianDot() and the
// CUDA kernels do: equal bit for bit, at widths and token counts that
// leave partial tiles and blocks.
TEST(QuantHessian, SumsOverTokensAreHessianDotsBitForBit) {
  for (const int64_t tokens : {23, 300}) {
    for (const int64_t cols : {7, 37}) {
      const std::vector<float> a = Random(tokens * cols, 3, 1.0f);
      const std::vector<float> b = Random(tokens * cols, 4, 1.0f);
      const std::vector<double> cross =
          internal::SumOfCrossProducts(a.data(), b.data(), tokens, cols, 3);
      const std::vector<double> outer = internal::SumOfOuterProducts(a.data(), tokens, cols, 3);
      for (int64_t i = 0; i < cols; ++i) {
        for (int64_t j = 0; j < cols; ++j) {
          ASSERT_EQ(cross[i * cols + j], internal::HessianDot(&a[i], &b[j], tokens, cols))
              << tokens << " x " << cols << ": " << i << ", " << j;
          ASSERT_EQ(outer[i * cols + j],
                    internal::HessianDot(&a[std::max(i, j)], &a[std::min(i, j)], tokens, cols));
        }
      }
    }
  }
}

// Inputs that end where an unreadable page begins: a read past the last
// token faults (GCC 12's AVX2 clone of the tile sums loaded the next
// token's row with each token's, and the server died of it).
class InputsBeforeAGuardPage {
 public:
  explicit InputsBeforeAGuardPage(const std::vector<float>& values) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t bytes = values.size() * sizeof(float), pages = (bytes + page - 1) / page;
    size_ = (pages + 1) * page;
    region_ = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(region_, MAP_FAILED);
    EXPECT_EQ(mprotect(static_cast<char*>(region_) + pages * page, page, PROT_NONE), 0);
    data_ = reinterpret_cast<float*>(static_cast<char*>(region_) + pages * page - bytes);
    std::copy(values.begin(), values.end(), data_);
  }
  ~InputsBeforeAGuardPage() { munmap(region_, size_); }
  const float* data() const { return data_; }

 private:
  void* region_ = nullptr;
  size_t size_ = 0;
  float* data_ = nullptr;
};

TEST(QuantHessian, SumsReadNothingPastTheLastToken) {
  for (const int64_t cols : {32, 37, 1024}) {
    const int64_t tokens = 64;
    const std::vector<float> a = Random(tokens * cols, 5, 1.0f);
    const InputsBeforeAGuardPage x(a), y(Random(tokens * cols, 6, 1.0f));
    const std::vector<double> outer = internal::SumOfOuterProducts(x.data(), tokens, cols, 2);
    const std::vector<double> cross =
        internal::SumOfCrossProducts(x.data(), y.data(), tokens, cols, 2);
    EXPECT_EQ(outer, internal::SumOfOuterProducts(a.data(), tokens, cols, 1)) << cols;
    EXPECT_EQ(cross[cols - 1], internal::HessianDot(x.data(), y.data() + cols - 1, tokens, cols));
  }
}

// W' = TowardReferenceOutputs(W) fits the reference outputs W x from the
// inputs x': the residual W' x' - W x is orthogonal to every column of X'
// (the normal equations), and no drift leaves W as it is.
TEST(QuantHessian, TowardReferenceOutputsIsTheLeastSquaresFit) {
  const int64_t rows = 5, cols = 12, tokens = 60;
  const std::vector<float> w = Random(rows * cols, 1, 1.0f);
  const std::vector<float> x_quantized = Random(tokens * cols, 2, 1.0f);
  std::vector<float> x = x_quantized, apart(x.size());
  const std::vector<float> noise = Random(tokens * cols, 3, 0.1f);
  for (size_t k = 0; k < x.size(); ++k) {
    x[k] += noise[k];
    apart[k] = x[k] - x_quantized[k];
  }
  const std::vector<double> h =
      internal::SumOfOuterProducts(x_quantized.data(), tokens, cols, 1);
  const std::vector<double> drift =
      internal::SumOfCrossProducts(x_quantized.data(), apart.data(), tokens, cols, 1);
  std::vector<float> fitted = w;
  ASSERT_TRUE(internal::TowardReferenceOutputs(h, drift, 1e-12, rows, cols, 2, &fitted).ok());
  const auto dot = [](const float* a, const float* b, int64_t n) {
    double s = 0;
    for (int64_t k = 0; k < n; ++k) s += static_cast<double>(a[k]) * b[k];
    return s;
  };
  double moved = 0, worst = 0, scale = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) moved += std::fabs(fitted[r * cols + c] - w[r * cols + c]);
    std::vector<double> residual(static_cast<size_t>(tokens));
    for (int64_t t = 0; t < tokens; ++t) {
      residual[t] = dot(&fitted[r * cols], &x_quantized[t * cols], cols) -
                    dot(&w[r * cols], &x[t * cols], cols);
    }
    for (int64_t c = 0; c < cols; ++c) {
      double along = 0, size = 0;
      for (int64_t t = 0; t < tokens; ++t) {
        along += residual[t] * x_quantized[t * cols + c];
        size += std::fabs(dot(&w[r * cols], &x[t * cols], cols) * x_quantized[t * cols + c]);
      }
      worst = std::max(worst, std::fabs(along));
      scale = std::max(scale, size);
    }
  }
  EXPECT_GT(moved, 0.01);
  EXPECT_LT(worst, 1e-5 * scale);
  std::vector<float> same = w;
  ASSERT_TRUE(internal::TowardReferenceOutputs(h, std::vector<double>(drift.size(), 0.0), 0.01,
                                               rows, cols, 2, &same)
                  .ok());
  EXPECT_EQ(same, w);
}

TEST(QuantHessianCuda, MatchesTheCpu) {
  SOLVERD_REQUIRE_CUDA();
  TestStream stream;
  ASSERT_TRUE(stream.status().ok());
  const Layer h = WithHessian(MakeLayer(64, 256, 256, true, 25));
  for (const bool k_quant : {false, true}) {
    Options o = Gptq(4, 64);
    o.k_quant = k_quant;
    const QuantizedLayer cpu = Quantize(h, o);
    const QuantizedLayer gpu = Quantize(h, o, Device::Cuda(0), stream.get());
    EXPECT_EQ(cpu.codes, gpu.codes) << "k_quant " << k_quant;
  }
}

}  // namespace
}  // namespace solverd::quant
