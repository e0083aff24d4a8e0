// Bit allocation: the knapsack against brute force, and whole-model
// allocation against the uniform widths it must not lose to.
#include <gtest/gtest.h>

#include <random>

#include "quant/bit_allocation.h"
#include "quant/model.h"

namespace solverd::quant {
namespace {

// The least total error over every combination (ties: fewer bytes).
double BruteForce(const std::vector<std::vector<BitsCandidate>>& layers, int64_t budget,
                  size_t l = 0, int64_t bytes = 0, double error = 0) {
  if (bytes > budget) return INFINITY;
  if (l == layers.size()) return error;
  double best = INFINITY;
  for (const BitsCandidate& c : layers[l]) {
    best = std::min(best, BruteForce(layers, budget, l + 1, bytes + c.bytes, error + c.error));
  }
  return best;
}

TEST(AllocateBits, MatchesBruteForce) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> size(1, 60);
  std::uniform_real_distribution<double> unit(0, 1);
  for (int trial = 0; trial < 200; ++trial) {
    const int n = 1 + trial % 6;
    std::vector<std::vector<BitsCandidate>> layers(n);
    int64_t smallest = 0, largest = 0;
    for (auto& layer : layers) {
      // Wider is bigger and (mostly) better, as with real bit widths.
      int64_t bytes = size(rng);
      double error = 10 * unit(rng);
      for (const int bits : {2, 3, 4, 8}) {
        layer.push_back({bits, bytes, error});
        bytes += size(rng);
        error *= unit(rng) < 0.9 ? unit(rng) : 1.5;
      }
      smallest += layer.front().bytes;
      largest += layer.back().bytes;
    }
    const int64_t budget = smallest + static_cast<int64_t>(unit(rng) * (largest - smallest));
    std::vector<int> chosen;
    ASSERT_TRUE(AllocateBits(layers, budget, &chosen).ok());
    ASSERT_EQ(chosen.size(), layers.size());
    int64_t bytes = 0;
    double error = 0;
    for (int l = 0; l < n; ++l) {
      bytes += layers[l][chosen[l]].bytes;
      error += layers[l][chosen[l]].error;
    }
    EXPECT_LE(bytes, budget) << "trial " << trial;
    EXPECT_DOUBLE_EQ(error, BruteForce(layers, budget)) << "trial " << trial;
  }
}

TEST(AllocateBits, RejectsABudgetBelowTheSmallestAllocation) {
  std::vector<int> chosen;
  const Status s = AllocateBits({{{2, 10, 1.0}, {4, 20, 0.5}}, {{2, 7, 1.0}}}, 16, &chosen);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "budget of 16 bytes is below the smallest allocation (17 bytes)");
}

std::vector<float> Random(int64_t n, std::mt19937* rng, float scale) {
  std::normal_distribution<float> normal(0, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = normal(*rng);
  return v;
}

// Four layers whose inputs differ in scale, so their output errors (and
// the value of a wider grid) differ by orders of magnitude.
struct Model {
  std::string model, calibration;
};
Model MakeModel(const float (&input_scale)[4] = {0.1f, 1.0f, 3.0f, 10.0f}) {
  std::mt19937 rng(9);
  SafetensorsWriter w, c;
  const int64_t shapes[4][2] = {{32, 64}, {64, 32}, {48, 48}, {16, 64}};
  for (int l = 0; l < 4; ++l) {
    const std::string name = "block" + std::to_string(l);
    const int64_t rows = shapes[l][0], cols = shapes[l][1];
    w.Add(name + ".weight", DType::kF32, {rows, cols}, FloatsToBytes(Random(rows * cols, &rng, 1)));
    c.Add(name + ".inputs", DType::kF32, {64, cols},
          FloatsToBytes(Random(64 * cols, &rng, input_scale[l])));
  }
  w.Add("head.bias", DType::kF32, {16}, FloatsToBytes(Random(16, &rng, 1)));
  return {w.Finish(), c.Finish()};
}

double TotalError(const ModelResult& r) {
  double sum = 0;
  for (const LayerSummary& s : r.layers) sum += s.report.output_error_squared;
  return sum;
}

ModelResult QuantizeWith(const Model& m, const ModelOptions& options) {
  ModelPlan plan;
  Status s = PlanModel(m.model, m.calibration, options, &plan);
  EXPECT_TRUE(s.ok()) << s.message();
  ModelResult result;
  s = QuantizeModel(Device::Cpu(), nullptr, plan, options, nullptr, nullptr, &result);
  EXPECT_TRUE(s.ok()) << s.message();
  return result;
}

TEST(ModelAllocation, NeverWorseThanTheUniformWidthItsBudgetAllows) {
  const Model m = MakeModel();
  for (const Method method : {Method::kRtn, Method::kGptq}) {
    ModelOptions uniform;
    uniform.layer.method = method;
    uniform.layer.group_size = 16;
    for (const int bits : {3, 4}) {
      uniform.layer.bits = bits;
      const ModelResult u = QuantizeWith(m, uniform);
      ModelOptions allocated = uniform;
      allocated.target_bits = u.average_bits;
      allocated.allocation_error = AllocationError::kAbsolute;
      const ModelResult a = QuantizeWith(m, allocated);
      EXPECT_LE(a.average_bits, u.average_bits + 1e-12);
      // Uniform widths fit the budget; the inputs' scales make them a poor use of it.
      EXPECT_LT(TotalError(a), 0.5 * TotalError(u)) << MethodName(method) << " " << bits;
      // The widths differ across layers: the sensitive layers got more.
      EXPECT_GT(a.layers.back().bits, a.layers.front().bits) << MethodName(method);
      for (const LayerSummary& s : a.layers) {
        ASSERT_EQ(s.candidates.size(), 4u);
        const BitsCandidate* used = nullptr;
        for (const BitsCandidate& c : s.candidates) used = c.bits == s.bits ? &c : used;
        ASSERT_NE(used, nullptr);
        // The final pass reproduces the measured candidate, bytes included.
        EXPECT_EQ(used->error, s.report.output_error_squared) << s.name;
        EXPECT_EQ(used->bytes, s.bytes_after) << s.name;
      }
    }
  }
}

// The relative error is blind to the scale of a layer's inputs: scaling
// them changes what the absolute error allocates and not what the relative
// error does, and each candidate's error is the layer's relative error
// squared.
TEST(ModelAllocation, RelativeErrorIgnoresTheScaleOfInputs) {
  ModelOptions options;
  options.layer.group_size = 16;
  options.target_bits = 5.5;  // 2 of them scales: a mix of 3 and 4 bits
  const auto chosen_bits = [&](const Model& m) {
    const ModelResult r = QuantizeWith(m, options);
    std::vector<int> bits;
    for (const LayerSummary& s : r.layers) bits.push_back(s.bits);
    return std::make_pair(bits, r);
  };
  const Model scaled = MakeModel(), unscaled = MakeModel({1, 1, 1, 1});
  const auto [relative_scaled, result] = chosen_bits(scaled);
  EXPECT_EQ(relative_scaled, chosen_bits(unscaled).first);
  EXPECT_NE(relative_scaled, std::vector<int>(4, relative_scaled[0]));
  for (const LayerSummary& s : result.layers) {
    for (const BitsCandidate& c : s.candidates) {
      if (c.bits != s.bits) continue;
      EXPECT_EQ(c.error, s.report.relative_output_error * s.report.relative_output_error);
      EXPECT_EQ(c.output_error_squared, s.report.output_error_squared);
    }
  }
  options.allocation_error = AllocationError::kAbsolute;
  EXPECT_NE(chosen_bits(scaled).first, chosen_bits(unscaled).first);
}

TEST(ModelAllocation, TargetBytesCountsTheWholeFile) {
  const Model m = MakeModel();
  ModelOptions options;
  options.layer.group_size = 16;
  options.target_bytes = 6000;
  const ModelResult r = QuantizeWith(m, options);
  EXPECT_LE(r.bytes_after, 6000);
  EXPECT_EQ(r.layer_budget_bytes, 6000 - 16 * 4);
}

TEST(ModelAllocation, BadTargetsAreRejected) {
  const Model m = MakeModel();
  ModelPlan plan;
  ModelOptions o;
  o.target_bits = 1.5;
  Status s = PlanModel(m.model, m.calibration, o, &plan);
  EXPECT_EQ(s.message().rfind("target_bits: 1.5", 0), 0u) << s.message();
  EXPECT_NE(s.message().find("every layer at 2 bits"), std::string::npos) << s.message();
  o.target_bytes = 100;
  s = PlanModel(m.model, m.calibration, o, &plan);
  EXPECT_EQ(s.message(), "target_bits: set target_bits or target_bytes, not both");
  o.target_bits = 0;
  s = PlanModel(m.model, m.calibration, o, &plan);
  EXPECT_EQ(s.message().rfind("target_bytes: 100 is below the smallest output", 0), 0u)
      << s.message();
  o.target_bytes = 0;
  o.target_bits = 4;
  o.layer.method = Method::kNf4;
  s = PlanModel(m.model, m.calibration, o, &plan);
  EXPECT_EQ(s.message(), "method: bit allocation needs a grid method (rtn, gptq, dmmv, hqq), "
                         "not nf4");
  o.layer.method = Method::kRtn;
  o.allocation_bits = {2, 9};
  s = PlanModel(m.model, m.calibration, o, &plan);
  EXPECT_EQ(s.message(), "allocation_bits: each must be 2..8");
}

}  // namespace
}  // namespace solverd::quant
