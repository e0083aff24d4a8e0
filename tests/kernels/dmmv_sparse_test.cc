// DMMV on a sparse X: exact optimum on tiny instances, honest objectives,
// CSR validation; the tomography builder (projector, phantom recovery);
// the CUDA sparse backend against the CPU one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "cuda_test_util.h"
#include "dmmv/dmmv.h"
#include "dmmv/tomography.h"
#include "dmmv_test_util.h"

namespace solverd::dmmv {
namespace {

using test_util::BruteForce;
using test_util::SolveCpu;
using test_util::Violation;

// A random sparse X (each entry present with probability `density`), b from
// a random continuous x, levels a uniform grid on [-1, 1].
Problem RandomSparse(int64_t rows, int64_t cols, double density, int levels, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> unit(0, 1);
  Problem p;
  p.rows = rows;
  p.cols = cols;
  p.x_csr.row_offsets.push_back(0);
  std::vector<double> w(cols);
  for (double& v : w) v = unit(rng) * 2 - 1;
  Instance inst;
  for (int64_t k = 0; k < rows; ++k) {
    double b = 0;
    for (int64_t j = 0; j < cols; ++j) {
      if (unit(rng) >= density) continue;
      const double x = normal(rng);
      p.x_csr.columns.push_back(static_cast<int32_t>(j));
      p.x_csr.values.push_back(x);
      b += x * w[j];
    }
    p.x_csr.row_offsets.push_back(static_cast<int64_t>(p.x_csr.values.size()));
    inst.b.push_back(b);
  }
  Levels l;
  l.lo = -1;
  l.step = 2.0 / (levels - 1);
  l.count = levels;
  inst.levels = {l};
  inst.start_values = w;
  p.instances.push_back(std::move(inst));
  return p;
}

TEST(DmmvSparse, FindsTheExactOptimumOnSmallInstances) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    Problem p = RandomSparse(/*rows=*/14, /*cols=*/7, /*density=*/0.4, /*levels=*/4, seed);
    const double exact = BruteForce(p, p.instances[0]);
    Options o;
    o.max_outer_iterations = 300;
    o.destroy_size = 3;
    Result r = SolveCpu(p, o);
    EXPECT_NEAR(r.instances[0].max_violation, exact, 1e-9) << "seed " << seed;
  }
}

TEST(DmmvSparse, ReportsTheTrueObjectiveAndImprovesOnRounding) {
  Problem p = RandomSparse(300, 120, 0.05, 9, 3);
  Options o;
  o.max_outer_iterations = 30;
  Result r = SolveCpu(p, o);
  const InstanceResult& ir = r.instances[0];
  auto [t, l2] = Violation(p, p.instances[0], ir.values);
  EXPECT_NEAR(ir.max_violation, t, 1e-9);
  EXPECT_NEAR(ir.l2, l2, 1e-6 * l2 + 1e-9);
  EXPECT_LT(ir.max_violation, ir.start_max_violation);
  EXPECT_GT(ir.moves, 0);
}

TEST(DmmvSparse, ValidationNamesTheField) {
  auto code_and_message = [](const Problem& p) {
    Status s = ValidateProblem(p);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    return s.message();
  };
  const Problem good = RandomSparse(6, 4, 0.7, 3, 1);
  ASSERT_TRUE(ValidateProblem(good).ok());
  Problem p = good;
  p.x_csr.row_offsets.pop_back();
  EXPECT_NE(code_and_message(p).find("x_csr.row_offsets"), std::string::npos);
  p = good;
  p.x_csr.columns[0] = 4;
  EXPECT_NE(code_and_message(p).find("x_csr.columns[0]"), std::string::npos);
  p = good;
  p.x_csr.values.back() = NAN;
  EXPECT_NE(code_and_message(p).find("x_csr.values"), std::string::npos);
  p = good;
  p.x = std::vector<double>(24, 1.0);
  EXPECT_NE(code_and_message(p).find("not both"), std::string::npos);
  p = RandomSparse(3, 4, 1.0, 3, 1);
  std::swap(p.x_csr.columns[0], p.x_csr.columns[1]);
  EXPECT_NE(code_and_message(p).find("strictly increasing"), std::string::npos);
}

TEST(Tomography, ProjectorDepositsEachPixelOncePerAngle) {
  const int size = 16, angles = 7, detectors = tomography::DefaultDetectors(size);
  const CsrMatrix a = tomography::Projector(size, angles, detectors);
  ASSERT_EQ(a.row_offsets.size(), static_cast<size_t>(angles * detectors + 1));
  std::vector<double> column_sums(size * size, 0.0);
  for (size_t e = 0; e < a.values.size(); ++e) column_sums[a.columns[e]] += a.values[e];
  for (double s : column_sums) EXPECT_NEAR(s, angles, 1e-12);
  // A uniform image's projection at angle 0 is its column sums.
  const std::vector<double> y = tomography::Project(a, std::vector<double>(size * size, 1.0));
  double total = 0;
  for (int d = 0; d < detectors; ++d) total += y[d];
  EXPECT_NEAR(total, size * size, 1e-9);
}

struct Recovery {
  double wrong_fraction, start_wrong_fraction, max_violation, start_max_violation;
};

Recovery Recover(int size, int angles, const std::vector<double>& levels, uint64_t seed) {
  const std::vector<double> truth = tomography::Phantom(size, levels, 6, seed);
  tomography::Spec spec;
  spec.size = size;
  spec.angles = angles;
  spec.levels = levels;
  const CsrMatrix a =
      tomography::Projector(size, angles, tomography::DefaultDetectors(size));
  spec.sinogram = tomography::Project(a, truth);
  Problem p;
  std::vector<double> start;
  Status s = tomography::Build(spec, &p, &start);
  EXPECT_TRUE(s.ok()) << s.message();
  Options o;
  o.max_outer_iterations = 20;
  Result r = SolveCpu(p, o);
  auto wrong = [&](const std::vector<double>& image) {
    int64_t count = 0;
    for (size_t j = 0; j < truth.size(); ++j) {
      const Levels l{0, 1, 0, levels};
      count += l.Value(l.Nearest(image[j])) != truth[j];
    }
    return static_cast<double>(count) / static_cast<double>(truth.size());
  };
  return {wrong(r.instances[0].values), wrong(start), r.instances[0].max_violation,
          r.instances[0].start_max_violation};
}

TEST(Tomography, RecoversABinaryPhantomExactlyFromNoiseFreeProjections) {
  double sart_wrong = 0;
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    const Recovery r = Recover(32, 8, {0, 1}, seed);
    EXPECT_EQ(r.wrong_fraction, 0) << "seed " << seed;
    EXPECT_LT(r.max_violation, 1e-9);
    sart_wrong += r.start_wrong_fraction;
  }
  EXPECT_GT(sart_wrong, 0) << "8 angles should be too few for SART rounded alone";
}

TEST(Tomography, FourLevelsLowerTheLargestResidualOfSartRounded) {
  for (uint64_t seed = 1; seed <= 2; ++seed) {
    const Recovery r = Recover(32, 16, {0, 1, 2, 3}, seed);
    EXPECT_LT(r.max_violation, r.start_max_violation) << "seed " << seed;
  }
}

TEST(Tomography, ValidationNamesTheField) {
  tomography::Spec spec;
  spec.size = 8;
  spec.angles = 4;
  spec.levels = {0, 1};
  spec.sinogram.assign(4 * tomography::DefaultDetectors(8), 0.0);
  Problem p;
  std::vector<double> start;
  ASSERT_TRUE(tomography::Build(spec, &p, &start).ok());
  tomography::Spec bad = spec;
  bad.sinogram.pop_back();
  EXPECT_NE(tomography::Validate(bad).message().find("tomography.sinogram"), std::string::npos);
  bad = spec;
  bad.levels = {1, 1};
  EXPECT_NE(tomography::Validate(bad).message().find("tomography.levels[1]"), std::string::npos);
  bad = spec;
  bad.size = 0;
  EXPECT_NE(tomography::Validate(bad).message().find("tomography.size"), std::string::npos);
  bad = spec;
  bad.settled_within = 0.5;
  EXPECT_NE(tomography::Validate(bad).message().find("tomography.settled_within"),
            std::string::npos);
  bad = spec;
  bad.noise_bound = -1;
  EXPECT_NE(tomography::Validate(bad).message().find("tomography.noise_bound"), std::string::npos);
  bad.noise_bound = NAN;
  EXPECT_NE(tomography::Validate(bad).message().find("tomography.noise_bound"), std::string::npos);
  bad = spec;
  bad.smoothness = -0.5;
  EXPECT_NE(tomography::Validate(bad).message().find("tomography.smoothness"), std::string::npos);
}

TEST(Tomography, SettledPixelsKeepTheLevelTheStartIsNear) {
  const std::vector<double> levels = {0, 1, 2, 3};
  const std::vector<double> truth = tomography::Phantom(24, levels, 6, 5);
  tomography::Spec spec;
  spec.size = 24;
  spec.angles = 6;
  spec.levels = levels;
  spec.sinogram = tomography::Project(
      tomography::Projector(24, 6, tomography::DefaultDetectors(24)), truth);
  Problem p;
  std::vector<double> start;
  ASSERT_TRUE(tomography::Build(spec, &p, &start).ok());
  const std::vector<Levels>& allowed = p.instances[0].levels;
  ASSERT_EQ(allowed.size(), start.size());
  int64_t free_pixels = 0;
  for (size_t j = 0; j < start.size(); ++j) {
    const double below = std::min(std::floor(start[j]), 2.0), at = start[j] - below;
    if (at <= spec.settled_within || at >= 1 - spec.settled_within) {
      EXPECT_EQ(allowed[j].values, std::vector<double>{at <= 0.5 ? below : below + 1}) << j;
    } else {
      EXPECT_EQ(allowed[j].values, (std::vector<double>{below, below + 1})) << j;
      ++free_pixels;
    }
  }
  EXPECT_GT(free_pixels, 0) << "6 angles should leave some pixels in doubt";
  spec.settled_within = 0;
  ASSERT_TRUE(tomography::Build(spec, &p, &start).ok());
  ASSERT_EQ(p.instances[0].levels.size(), 1u);
  EXPECT_EQ(p.instances[0].levels[0].values, levels);
}

// A phantom's sinogram with uniform noise of +- `noise` times its largest ray sum.
tomography::Spec NoisySpec(int size, int angles, const std::vector<double>& levels, double noise,
                           uint64_t seed, std::vector<double>* truth) {
  *truth = tomography::Phantom(size, levels, 6, seed);
  tomography::Spec spec;
  spec.size = size;
  spec.angles = angles;
  spec.levels = levels;
  spec.sinogram = tomography::Project(
      tomography::Projector(size, angles, tomography::DefaultDetectors(size)), *truth);
  const double peak = *std::max_element(spec.sinogram.begin(), spec.sinogram.end());
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uniform(-noise * peak, noise * peak);
  for (double& v : spec.sinogram) v += uniform(rng);
  spec.noise_bound = noise * peak;
  return spec;
}

TEST(Tomography, NoiseBoundAddsAWeightedRowPerNeighbourPair) {
  std::vector<double> truth;
  tomography::Spec spec = NoisySpec(8, 4, {0, 1, 2}, 0.05, 1, &truth);
  spec.smoothness = 3;
  Problem p;
  std::vector<double> start;
  ASSERT_TRUE(tomography::Build(spec, &p, &start).ok());
  const int64_t rays = int64_t{4} * tomography::DefaultDetectors(8);
  ASSERT_EQ(p.rows, rays + 2 * 8 * 7);
  const Instance& inst = p.instances[0];
  EXPECT_DOUBLE_EQ(inst.weights[0], std::sqrt(1.5) / spec.noise_bound);  // 1 / (sigma sqrt 2)
  EXPECT_DOUBLE_EQ(inst.weights[rays], std::sqrt(3.0) / 2);  // sqrt(smoothness) / range
  // The first pair row is pixels 0 and 1: v_0 - v_1, b = 0.
  const int64_t e = p.x_csr.row_offsets[rays];
  EXPECT_EQ(p.x_csr.row_offsets[rays + 1] - e, 2);
  EXPECT_EQ(p.x_csr.columns[e], 0);
  EXPECT_EQ(p.x_csr.columns[e + 1], 1);
  EXPECT_EQ(p.x_csr.values[e] + p.x_csr.values[e + 1], 0.0);
  EXPECT_EQ(inst.b[rays], 0.0);
  const double truth_residual = tomography::MaxRayResidual(p, rays, truth);
  EXPECT_LE(truth_residual, spec.noise_bound);  // the noise itself
  EXPECT_GT(truth_residual, 0.5 * spec.noise_bound);
  spec.smoothness = 0;
  ASSERT_TRUE(tomography::Build(spec, &p, &start).ok());
  EXPECT_EQ(p.rows, rays);
}

TEST(Tomography, BestStartIsTheRoundingWithTheSmallerObjective) {
  std::vector<double> truth;
  tomography::Spec spec = NoisySpec(24, 12, {0, 1, 2, 3}, 0.03, 2, &truth);
  Problem p;
  std::vector<double> start;
  double l2[2];
  for (tomography::Method m : {tomography::Method::kSart, tomography::Method::kSirt}) {
    spec.start = m;
    ASSERT_TRUE(tomography::Build(spec, &p, &start).ok());
    l2[m == tomography::Method::kSirt] =
        Violation(p, p.instances[0], tomography::RoundToLevels(start, spec.levels)).second;
  }
  ASSERT_NE(l2[0], l2[1]);
  const std::vector<double> sirt = start;
  spec.start = tomography::Method::kBest;
  ASSERT_TRUE(tomography::Build(spec, &p, &start).ok());
  EXPECT_EQ(start == sirt, l2[1] < l2[0]);
}

TEST(Tomography, UnderStatedNoiseGetsFewerWrongPixelsThanSartRounded) {
  const std::vector<double> levels = {0, 1, 2, 3};
  const Levels grid{0, 1, 0, levels};
  int64_t wrong = 0, sart_wrong = 0;
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    std::vector<double> truth;
    tomography::Spec spec = NoisySpec(32, 32, levels, 0.03, seed, &truth);
    const std::vector<double> sart = tomography::RoundToLevels(
        tomography::Reconstruct(tomography::Projector(32, 32, tomography::DefaultDetectors(32)),
                                32 * 32, 32, spec.sinogram, tomography::Method::kSart, 30, 0, 3),
        levels);
    spec.start = tomography::Method::kBest;
    Problem p;
    std::vector<double> start;
    ASSERT_TRUE(tomography::Build(spec, &p, &start).ok());
    Options o;
    o.least_squares = spec.least_squares();
    o.max_outer_iterations = 100;
    o.stall_rounds = 20;
    const Result r = SolveCpu(p, o);
    for (size_t j = 0; j < truth.size(); ++j) {
      wrong += r.instances[0].values[j] != truth[j];
      sart_wrong += sart[j] != truth[j];
    }
  }
  EXPECT_LT(wrong, sart_wrong);
}

// The reweighted rounds (a Potts-like prior) recover four-level phantoms'
// sharp edges that the squared prior smears into steps.
TEST(Tomography, ReweightingTheNeighbourRowsGetsFewerWrongPixels) {
  const std::vector<double> levels = {0, 1, 2, 3};
  int64_t reweighted_wrong = 0, plain_wrong = 0;
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    std::vector<double> truth;
    tomography::Spec spec = NoisySpec(32, 32, levels, 0.03, seed, &truth);
    spec.start = tomography::Method::kBest;
    for (const int rounds : {0, 2}) {
      spec.reweight_rounds = rounds;
      Problem p;
      std::vector<double> start;
      ASSERT_TRUE(tomography::Build(spec, &p, &start).ok());
      Options o;
      o.max_outer_iterations = 100;
      o.stall_rounds = 20;
      Result r;
      ASSERT_TRUE(tomography::Solve(Device::Cpu(), nullptr, spec, &p, o, nullptr, nullptr, &r)
                      .ok());
      for (size_t j = 0; j < truth.size(); ++j) {
        (rounds > 0 ? reweighted_wrong : plain_wrong) += r.instances[0].values[j] != truth[j];
      }
    }
  }
  EXPECT_LT(reweighted_wrong, plain_wrong);
}

class DmmvSparseCuda : public ::testing::TestWithParam<bool> {};  // least_squares

TEST_P(DmmvSparseCuda, MatchesTheCpuBitForBit) {
  SOLVERD_REQUIRE_CUDA();
  Problem p = RandomSparse(400, 160, 0.05, 9, 11);
  p.instances.push_back(p.instances[0]);
  p.instances[1].start_values.assign(p.cols, 0.0);
  Options o;
  o.max_outer_iterations = 15;
  o.least_squares = GetParam();
  Result cpu = SolveCpu(p, o);
  TestStream stream;
  ASSERT_TRUE(stream.status().ok());
  Result gpu;
  Status s = Solve(Device::Cuda(0), stream.get(), p, o, nullptr, nullptr, &gpu);
  ASSERT_TRUE(s.ok()) << s.message();
  for (size_t i = 0; i < p.instances.size(); ++i) {
    // The same per-move code, the same worst rows, no FMA: the same search.
    EXPECT_EQ(gpu.instances[i].level_indices, cpu.instances[i].level_indices) << i;
    EXPECT_EQ(gpu.instances[i].max_violation, cpu.instances[i].max_violation) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Objectives, DmmvSparseCuda, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "LeastSquares" : "MinMax"; });

}  // namespace
}  // namespace solverd::dmmv
