// The omega tuners: their distributions, that they learn on stationary and
// contextual sequences, determinism, and the grid oracle through SolveTuned.
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "sor/sequence.h"
#include "sor/tuner.h"
#include "sor/tuner_algorithms.h"

namespace solverd::sor {
namespace {

std::unique_ptr<Tuner> MakeOrDie(const TunerConfig& config) {
  std::unique_ptr<Tuner> tuner;
  const Status s = Tuner::Create(config, &tuner);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return tuner;
}

// A synthetic solver: iterations grow quadratically with the distance of
// omega from the best one for the context, plus noise.
int64_t SyntheticIterations(double omega, double best_omega, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> noise(0, 10);
  return 40 + static_cast<int64_t>(600 * (omega - best_omega) * (omega - best_omega)) + noise(rng);
}

TEST(SorTuner, TsallisProbabilitiesAreADistributionFavouringLowLoss) {
  const std::vector<double> p = internal::TsallisProbabilities({3, 1, 2, 5}, 0.5);
  EXPECT_NEAR(std::accumulate(p.begin(), p.end(), 0.0), 1, 1e-12);
  EXPECT_GT(p[1], p[2]);
  EXPECT_GT(p[2], p[0]);
  EXPECT_GT(p[0], p[3]);
  const std::vector<double> equal = internal::TsallisProbabilities({2, 2, 2, 2}, 1.0);
  for (double v : equal) EXPECT_NEAR(v, 0.25, 1e-12);
}

TEST(SorTuner, ChebyshevFeaturesFollowTheRecurrence) {
  const std::vector<double> t = internal::ChebyshevFeatures(0.3, 5);
  EXPECT_DOUBLE_EQ(t[0], 1);
  EXPECT_DOUBLE_EQ(t[1], 0.3);
  EXPECT_NEAR(t[2], 2 * 0.09 - 1, 1e-15);
  EXPECT_NEAR(t[4], std::cos(4 * std::acos(0.3)), 1e-12);
}

TEST(SorTuner, TsallisInfConcentratesOnTheBestFixedOmega) {
  TunerConfig config;
  config.algorithm = TunerAlgorithm::kTsallisInf;
  config.seed = 7;
  auto tuner = MakeOrDie(config);
  std::mt19937_64 rng(1);
  const double best = 1.5;  // grid point 10 of linspace(1, 1.95, 20) is exactly 1.5
  std::map<int, int> late_choices;
  for (int t = 0; t < 3000; ++t) {
    const int arm = tuner->Choose(0);
    tuner->Observe(arm, 0, SyntheticIterations(tuner->grid()[arm], best, rng));
    if (t >= 2500) ++late_choices[arm];
  }
  int near_best = 0;
  for (auto [arm, count] : late_choices) {
    if (std::abs(tuner->grid()[arm] - best) < 0.11) near_best += count;
  }
  EXPECT_GT(near_best, 400) << "of 500 late choices";
  const TunerSnapshot snap = tuner->Snapshot();
  EXPECT_EQ(snap.systems, 3000);
  EXPECT_GT(snap.arms[10].plays, snap.arms[0].plays);
}

double LateMeanCost(TunerAlgorithm algorithm, int rounds) {
  TunerConfig config;
  config.algorithm = algorithm;
  config.seed = 3;
  config.context_min = 0;
  config.context_max = 1;
  auto tuner = MakeOrDie(config);
  std::mt19937_64 rng(2);
  std::uniform_real_distribution<double> context(0, 1);
  double late = 0;
  for (int t = 0; t < rounds; ++t) {
    const double c = context(rng);
    const int arm = tuner->Choose(c);
    const int64_t it = SyntheticIterations(tuner->grid()[arm], 1.1 + 0.8 * c, rng);
    tuner->Observe(arm, c, it);
    if (t >= rounds - 500) late += it;
  }
  return late / 500;
}

// With the best omega depending on the context, contextual tuners approach
// the instance-optimal cost (about 45 here); no fixed omega can.
TEST(SorTuner, ContextualTunersTrackAContextDependentOptimum) {
  const double chebcb = LateMeanCost(TunerAlgorithm::kChebCb, 3000);
  const double binned = LateMeanCost(TunerAlgorithm::kTsallisInfCb, 3000);
  const double plain = LateMeanCost(TunerAlgorithm::kTsallisInf, 3000);
  std::printf("chebcb %.1f binned %.1f plain %.1f\n", chebcb, binned, plain);
  EXPECT_LT(chebcb, 55);
  EXPECT_LT(binned, 70);
  EXPECT_LT(chebcb, plain);
  EXPECT_LT(binned, plain);
}

TEST(SorTuner, SameSeedSameChoices) {
  TunerConfig config;
  config.algorithm = TunerAlgorithm::kChebCb;
  config.seed = 11;
  auto first = MakeOrDie(config), second = MakeOrDie(config);
  std::mt19937_64 rng(5);
  for (int t = 0; t < 200; ++t) {
    const double c = (t % 17) / 17.0;
    const int a = first->Choose(c), b = second->Choose(c);
    ASSERT_EQ(a, b) << "round " << t;
    const int64_t it = SyntheticIterations(first->grid()[a], 1.4, rng);
    first->Observe(a, c, it);
    second->Observe(b, c, it);
  }
}

TEST(SorTuner, InvalidConfigsAreRejected) {
  std::unique_ptr<Tuner> tuner;
  TunerConfig config;
  config.grid = {1.0, 2.5};
  EXPECT_EQ(Tuner::Create(config, &tuner).code(), StatusCode::kInvalidArgument);
  config = TunerConfig();
  config.context_min = config.context_max = 1;
  EXPECT_EQ(Tuner::Create(config, &tuner).code(), StatusCode::kInvalidArgument);
  config = TunerConfig();
  config.algorithm = TunerAlgorithm::kFixed;
  config.fixed_omega = 0;
  EXPECT_EQ(Tuner::Create(config, &tuner).code(), StatusCode::kInvalidArgument);
  TunerAlgorithm parsed;
  EXPECT_TRUE(ParseTunerAlgorithm("tsallis-inf-cb", &parsed));
  EXPECT_EQ(parsed, TunerAlgorithm::kTsallisInfCb);
  EXPECT_FALSE(ParseTunerAlgorithm("ucb", &parsed));
}

TEST(SorTuner, GridOracleKeepsTheFastestOmega) {
  TunerConfig config;
  config.algorithm = TunerAlgorithm::kGridOracle;
  config.grid = {1.0, 1.3, 1.6, 1.9};
  auto tuner = MakeOrDie(config);
  const CsrMatrix a = Laplacian2d(10, 10);
  const SweepOrder order = MulticolorOrder(a);
  std::vector<double> b(a.n, 1.0);
  Options options;
  std::vector<int64_t> each;
  for (double omega : config.grid) {
    options.omega = omega;
    Result r;
    ASSERT_TRUE(Solve(Device::Cpu(), nullptr, a, order, b, {}, options, nullptr, nullptr, &r).ok());
    each.push_back(r.iterations);
  }
  TunedSolve out;
  ASSERT_TRUE(SolveTuned(*tuner, Device::Cpu(), nullptr, a, order, b, {}, 0, Options(), nullptr,
                         nullptr, &out).ok());
  const auto fastest = std::min_element(each.begin(), each.end());
  EXPECT_EQ(out.arm, fastest - each.begin());
  EXPECT_EQ(out.result.iterations, *fastest);
  EXPECT_EQ(out.work_iterations, std::accumulate(each.begin(), each.end(), int64_t{0}));
  EXPECT_TRUE(out.result.converged);
}

// A restored tuner makes exactly the choices the original would have.
TEST(SorTuner, CheckpointRestoresTheSameFutureChoices) {
  for (TunerAlgorithm algorithm : {TunerAlgorithm::kTsallisInf, TunerAlgorithm::kTsallisInfCb,
                                   TunerAlgorithm::kChebCb}) {
    TunerConfig config;
    config.algorithm = algorithm;
    config.seed = 4;
    auto original = MakeOrDie(config);
    std::mt19937_64 rng(6);
    auto play = [&](Tuner& tuner, int t) {
      const double c = (t % 7) / 7.0;
      const int arm = tuner.Choose(c);
      tuner.Observe(arm, c, SyntheticIterations(tuner.grid()[arm], 1.3 + 0.5 * c, rng));
      return arm;
    };
    for (int t = 0; t < 300; ++t) play(*original, t);
    auto restored = MakeOrDie(config);
    ASSERT_TRUE(restored->Restore(original->Checkpoint()).ok()) << TunerAlgorithmName(algorithm);
    EXPECT_EQ(restored->Snapshot().systems, 300);
    for (int t = 300; t < 400; ++t) {
      const std::mt19937_64 saved = rng;
      const int a = play(*original, t);
      rng = saved;
      ASSERT_EQ(play(*restored, t), a) << TunerAlgorithmName(algorithm) << " round " << t;
    }
    TunerConfig other = config;
    other.grid = {1.0, 1.5};
    auto mismatched = MakeOrDie(other);
    EXPECT_EQ(mismatched->Restore(original->Checkpoint()).code(), StatusCode::kInvalidArgument);
  }
}

// Two copies of one tuner learn on their own; replaying both copies'
// observations into the original loses none of them, and replaying one
// copy's into a twin of its start teaches the twin exactly what it learned.
TEST(SorTuner, ReplayedObservationsTeachWhatTheCopyLearned) {
  for (TunerAlgorithm algorithm : {TunerAlgorithm::kTsallisInf, TunerAlgorithm::kTsallisInfCb,
                                   TunerAlgorithm::kChebCb, TunerAlgorithm::kGridOracle}) {
    TunerConfig config;
    config.algorithm = algorithm;
    config.seed = 9;
    auto shared = MakeOrDie(config);
    std::mt19937_64 rng(2);
    auto copy = [&] {
      auto t = MakeOrDie(config);
      EXPECT_TRUE(t->Restore(shared->Checkpoint()).ok());
      t->RecordObservations();
      return t;
    };
    auto a = copy(), b = copy();
    for (int t = 0; t < 50; ++t) {
      for (Tuner* tuner : {a.get(), b.get()}) {
        const double c = (t % 5) / 5.0;
        if (tuner->tries_every_arm()) {
          std::vector<int64_t> all;
          for (double omega : tuner->grid()) all.push_back(SyntheticIterations(omega, 1.4, rng));
          tuner->ObserveAll(c, all);
        } else {
          const int arm = tuner->Choose(c);
          tuner->Observe(arm, c, SyntheticIterations(tuner->grid()[arm], 1.4, rng));
        }
      }
    }
    auto twin = MakeOrDie(config);
    ASSERT_TRUE(twin->Restore(shared->Checkpoint()).ok());
    const std::vector<TunerObservation> from_a = a->TakeObservations();
    EXPECT_EQ(from_a.size(), 50u);
    EXPECT_TRUE(a->TakeObservations().empty()) << "taken once";
    twin->Replay(from_a);
    const TunerCheckpoint learned = a->Checkpoint(), replayed = twin->Checkpoint();
    EXPECT_EQ(replayed.systems, learned.systems);
    EXPECT_EQ(replayed.total_iterations, learned.total_iterations);
    EXPECT_EQ(replayed.learner, learned.learner) << TunerAlgorithmName(algorithm);
    for (size_t i = 0; i < learned.arms.size(); ++i) {
      EXPECT_EQ(replayed.arms[i].plays, learned.arms[i].plays);
    }
    shared->Replay(from_a);
    shared->Replay(b->TakeObservations());
    EXPECT_EQ(shared->Snapshot().systems, 100) << TunerAlgorithmName(algorithm);
  }
}

}  // namespace
}  // namespace solverd::sor
