// Tests of the CPU backend's sparsified plan: its products equal the dense
// products over the kept entries, from rows given as log P (an exp per
// kept entry) or as P itself, with entries ranked by log P alone or less
// row and column weights, and a rebuild with more or fewer entries
// (growing or reusing its buffers) leaves nothing of the last plan behind;
// a refresh keeps the entries and takes new values for them.
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "ot/sinkhorn_math.h"
#include "ot/sparse_plan_matrix.h"

namespace solverd::ot::internal {
namespace {

// Rows enough for Build() to split them between two threads (64 a thread at
// least), in parts of unequal size.
constexpr int64_t kRows = 131, kCols = 53;

// log P in [-6, 0), row-major.
std::vector<double> RandomLogPlan(unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-6.0, 0.0);
  std::vector<double> log_plan(kRows * kCols);
  for (double& v : log_plan) v = u(rng);
  return log_plan;
}

std::vector<double> RandomVector(int64_t size, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> v(size);
  for (double& e : v) e = u(rng);
  return v;
}

// Ranks by log P alone.
const std::vector<double> kNoRowWeights(kRows, 0.0), kNoColWeights(kCols, 0.0);
KeepRule RankByPlan(double threshold) {
  return KeepRule{threshold, kNoRowWeights.data(), kNoColWeights.data()};
}

// Checks Multiply, MultiplyTransposed and ColumnSquares against the dense
// products over the entries `rule` keeps.
void ExpectDenseProducts(const SparsePlanMatrix& sparse, const std::vector<double>& log_plan,
                         const KeepRule& rule) {
  std::vector<double> kept(kRows * kCols, 0.0);
  int64_t count = 0;
  for (int64_t k = 0; k < kRows * kCols; ++k) {
    const double rank = EntryRank(log_plan[k], rule.row_weight[k / kCols],
                                  rule.col_weight[k % kCols]);
    if (rank >= rule.threshold) {
      kept[k] = std::exp(log_plan[k]);
      ++count;
    }
  }
  ASSERT_EQ(sparse.entries(), count);
  const std::vector<double> v = RandomVector(kCols, 1), u = RandomVector(kRows, 2);
  std::vector<double> pv, ptu, squares;
  sparse.Multiply(v, &pv);
  sparse.MultiplyTransposed(u, &ptu);
  sparse.ColumnSquares(u, &squares);
  // Values are kept in single precision: each product is within 2^-24 of
  // the sum of its terms' magnitudes.
  constexpr double kRelative = 0x1p-23;
  for (int64_t i = 0; i < kRows; ++i) {
    double want = 0, scale = 0;
    for (int64_t j = 0; j < kCols; ++j) {
      want += kept[i * kCols + j] * v[j];
      scale += std::fabs(kept[i * kCols + j] * v[j]);
    }
    EXPECT_NEAR(pv[i], want, kRelative * scale + 1e-300) << "row " << i;
  }
  for (int64_t j = 0; j < kCols; ++j) {
    double want = 0, scale = 0, want_squares = 0, squares_scale = 0;
    for (int64_t i = 0; i < kRows; ++i) {
      const double p = kept[i * kCols + j];
      want += p * u[i];
      scale += std::fabs(p * u[i]);
      want_squares += p * p * u[i];
      squares_scale += std::fabs(p * p * u[i]);
    }
    EXPECT_NEAR(ptu[j], want, kRelative * scale + 1e-300) << "column " << j;
    EXPECT_NEAR(squares[j], want_squares, 2 * kRelative * squares_scale + 1e-300)
        << "column " << j;
  }
}

TEST(SparsePlanMatrix, ProductsAreTheDenseOnesOverTheKeptEntries) {
  const std::vector<double> log_plan = RandomLogPlan(7);
  auto log_row = [&](int64_t i, double* out) {
    for (int64_t j = 0; j < kCols; ++j) out[j] = log_plan[i * kCols + j];
  };
  auto plan_row = [&](int64_t i, double* out) {
    for (int64_t j = 0; j < kCols; ++j) out[j] = std::exp(log_plan[i * kCols + j]);
  };
  SparsePlanMatrix sparse;
  // A third of the entries, then nearly all (the buffers grow), then a
  // tenth (they are reused), each with and without the plan's rows.
  for (double threshold : {-2.0, -5.9, -0.6}) {
    for (bool given_plan : {false, true}) {
      SCOPED_TRACE(testing::Message() << "threshold " << threshold << ", plan rows "
                                      << given_plan);
      sparse.Build(kRows, kCols, /*threads=*/2, RankByPlan(threshold), log_row,
                   given_plan ? SparsePlanMatrix::PlanRowFn(plan_row) : nullptr);
      ExpectDenseProducts(sparse, log_plan, RankByPlan(threshold));
    }
  }
}

// With weights, an entry is kept by its rank, not its value: rows and
// columns of high weight keep fewer entries.
TEST(SparsePlanMatrix, KeepsTheEntriesRankedAtOrAboveTheThreshold) {
  const std::vector<double> log_plan = RandomLogPlan(11);
  const std::vector<double> row_weight = RandomVector(kRows, 3),
                            col_weight = RandomVector(kCols, 4);
  const KeepRule rule{-2.5, row_weight.data(), col_weight.data()};
  SparsePlanMatrix sparse;
  for (bool given_plan : {false, true}) {
    sparse.Build(kRows, kCols, 2, rule,
                 [&](int64_t i, double* out) {
                   for (int64_t j = 0; j < kCols; ++j) out[j] = log_plan[i * kCols + j];
                 },
                 given_plan ? SparsePlanMatrix::PlanRowFn([&](int64_t i, double* out) {
                   for (int64_t j = 0; j < kCols; ++j) out[j] = std::exp(log_plan[i * kCols + j]);
                 })
                            : nullptr);
    ExpectDenseProducts(sparse, log_plan, rule);
  }
  // Not the entries ranked by log P alone at that threshold.
  int64_t by_plan = 0;
  for (double v : log_plan) by_plan += v >= -2.5;
  EXPECT_NE(sparse.entries(), by_plan);
}

// Refresh keeps the entries chosen at the first plan and takes their
// values from the second.
TEST(SparsePlanMatrix, RefreshKeepsTheEntriesAndTakesTheNewValues) {
  const std::vector<double> first = RandomLogPlan(9), second = RandomLogPlan(10);
  SparsePlanMatrix sparse;
  sparse.Build(kRows, kCols, 2, RankByPlan(-2.0), [&](int64_t i, double* out) {
    for (int64_t j = 0; j < kCols; ++j) out[j] = first[i * kCols + j];
  });
  double want_mass = 0;
  std::vector<double> refreshed(kRows * kCols, -INFINITY);  // log P on the first's entries
  for (int64_t k = 0; k < kRows * kCols; ++k) {
    if (first[k] < -2.0) continue;
    refreshed[k] = second[k];
    want_mass += std::exp(second[k]);
  }
  const double mass = sparse.Refresh(
      [&](int64_t i, const int32_t* columns, int64_t count, double* out) {
        for (int64_t k = 0; k < count; ++k) out[k] = std::exp(second[i * kCols + columns[k]]);
      });
  EXPECT_NEAR(mass, want_mass, 1e-12);
  // The products over the first's entries with the second's values: the
  // dense reference keeps exactly those (log P = -inf elsewhere).
  ExpectDenseProducts(sparse, refreshed, RankByPlan(-1e300));
}

// The coarse level's two passes (coarse_space.h) against dense loops over
// the kept entries: each column's heaviest weighted seed row, and each
// row's sums over groups of columns.
TEST(SparsePlanMatrix, HeaviestWeightedRowsAndGroupRowSumsCoverTheKeptEntries) {
  const std::vector<double> log_plan = RandomLogPlan(12);
  SparsePlanMatrix sparse;
  sparse.Build(kRows, kCols, 2, RankByPlan(-2.0), [&](int64_t i, double* out) {
    for (int64_t j = 0; j < kCols; ++j) out[j] = log_plan[i * kCols + j];
  });
  const auto kept = [&](int64_t i, int64_t j) {
    const double p = log_plan[i * kCols + j] >= -2.0 ? std::exp(log_plan[i * kCols + j]) : 0.0;
    return static_cast<double>(static_cast<float>(p));  // as stored
  };
  std::vector<double> weight(kRows, 0.0);
  for (int64_t i = 0; i < kRows; i += 9) weight[i] = 1.0 + i % 4;  // seeds
  std::vector<int32_t> heaviest;
  sparse.HeaviestWeightedRows(weight, &heaviest);
  ASSERT_EQ(static_cast<int64_t>(heaviest.size()), kCols);
  int64_t covered = 0;
  for (int64_t j = 0; j < kCols; ++j) {
    int32_t want = -1;
    double best = 0;
    for (int64_t i = 0; i < kRows; ++i) {
      const double key = kept(i, j) * weight[i];
      if (key > 0 && key >= best) {
        best = key;
        want = static_cast<int32_t>(i);
      }
    }
    EXPECT_EQ(heaviest[j], want) << "column " << j;
    covered += want >= 0;
  }
  EXPECT_GT(covered, kCols / 2);
  std::vector<int32_t> group(kCols);
  for (int64_t j = 0; j < kCols; ++j) group[j] = j % 5 == 0 ? -1 : static_cast<int32_t>(j % 3);
  std::vector<double> sums;
  sparse.GroupRowSums(group, 3, &sums);
  ASSERT_EQ(static_cast<int64_t>(sums.size()), kRows * 3);
  for (int64_t i = 0; i < kRows; ++i) {
    double want[3] = {0, 0, 0};
    for (int64_t j = 0; j < kCols; ++j) {
      if (group[j] >= 0) want[group[j]] += kept(i, j);
    }
    for (int t = 0; t < 3; ++t) EXPECT_NEAR(sums[i * 3 + t], want[t], 1e-12) << i << ", " << t;
  }
}

TEST(SparsePlanMatrix, NoEntryKeptGivesZeroProducts) {
  const std::vector<double> log_plan = RandomLogPlan(8);
  SparsePlanMatrix sparse;
  sparse.Build(kRows, kCols, 2, RankByPlan(1.0), [&](int64_t i, double* out) {
    for (int64_t j = 0; j < kCols; ++j) out[j] = log_plan[i * kCols + j];
  });
  ExpectDenseProducts(sparse, log_plan, RankByPlan(1.0));
}

}  // namespace
}  // namespace solverd::ot::internal
