#include "ot/sparse_plan_matrix.h"

#include <algorithm>
#include <cmath>

#include "common/cpu_clones.h"
#include "common/parallel_for.h"
#include "ot/sinkhorn_math.h"

namespace solverd::ot::internal {
namespace {

// sum_k values[k] * x[index[k]] over [begin, end), in four running sums:
// one waited on each add's latency, about 3 cycles an entry. SNS on
// bench/ot's cases (fastest of 5-9 runs): pot_n2000 0.15 -> 0.10 s, random
// assignment 5.7 -> 5.0 ms. Vector gathers (omp simd) did as well on long
// rows and worse on short ones (random assignment keeps 10-20 entries a
// row: 6.6 ms). The sums' order differs from the entries' by rounding only.
double Gather(const int32_t* index, const float* values, int64_t begin, int64_t end,
              const double* x) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t k = begin;
  for (; k + 4 <= end; k += 4) {
    s0 += static_cast<double>(values[k]) * x[index[k]];
    s1 += static_cast<double>(values[k + 1]) * x[index[k + 1]];
    s2 += static_cast<double>(values[k + 2]) * x[index[k + 2]];
    s3 += static_cast<double>(values[k + 3]) * x[index[k + 3]];
  }
  for (; k < end; ++k) s0 += static_cast<double>(values[k]) * x[index[k]];
  return (s0 + s1) + (s2 + s3);
}

}  // namespace

SOLVERD_CPU_CLONES void RankRow(const double* log_plan, double row_weight,
                                const double* col_weight, int64_t m, double* rank) {
#pragma omp simd
  for (int64_t j = 0; j < m; ++j) rank[j] = EntryRank(log_plan[j], row_weight, col_weight[j]);
}

void SparsePlanMatrix::Build(int64_t n, int64_t m, int threads, const KeepRule& rule,
                             const PlanRowFn& log_plan_row, const PlanRowFn& plan_row) {
  n_ = n;
  m_ = m;
  threads_ = threads;
  // One pass over the plan: the first part of the rows keeps its entries
  // in place, each other part in a buffer of its own, copied into place
  // after. Counting the rows in a pass of their own first computed every
  // log P twice (on random assignment, n = 500, the build took 0.35 ms,
  // more than ten Sinkhorn steps).
  const int64_t part_count = PartCount(n, threads);
  if (static_cast<int64_t>(part_buffers_.size()) < part_count - 1) {
    part_buffers_.resize(part_count - 1);
  }
  const auto part_buffers = [&](int64_t part) {
    if (part == 0) return PartRows{&row_col_, &row_value_};
    return PartRows{&part_buffers_[part - 1].first, &part_buffers_[part - 1].second};
  };
  std::vector<int64_t> counts(n, 0), part_entries(part_count, 0);
  ParallelForParts(n, part_count, [&](int64_t part, int64_t begin, int64_t end) {
    part_entries[part] = KeepRows(begin, end, rule, log_plan_row, plan_row,
                                  counts.data(), part_buffers(part));
  });
  row_start_.assign(n + 1, 0);
  for (int64_t i = 0; i < n; ++i) row_start_[i + 1] = row_start_[i] + counts[i];
  entries_ = row_start_[n];
  int32_t* row_col = row_col_.Grow(part_entries[0], entries_);
  float* row_value = row_value_.Grow(part_entries[0], entries_);
  ParallelForParts(n, part_count, [&](int64_t part, int64_t begin, int64_t) {
    if (part == 0) return;  // in place already
    const PartRows rows = part_buffers(part);
    std::copy(rows.cols->array.data(), rows.cols->array.data() + part_entries[part],
              row_col + row_start_[begin]);
    std::copy(rows.values->array.data(), rows.values->array.data() + part_entries[part],
              row_value + row_start_[begin]);
  });
  Transpose(part_count);
}

// By counting sort on the column, on the parts of Build(): each part counts
// its rows' entries per column, then writes them from its own offset in
// each column, after those of the parts before it, so every column lists
// its rows in order, as one pass over all rows would. On one thread the
// transpose took half of Build() at n = 2000 (1.2M entries of a point
// cloud's plan: 7.7 of 15 ms).
void SparsePlanMatrix::Transpose(int64_t part_count) {
  const int32_t* row_col = row_col_.array.data();
  const float* row_value = row_value_.array.data();
  std::vector<std::vector<int64_t>> next(part_count, std::vector<int64_t>(m_, 0));
  ParallelForParts(n_, part_count, [&](int64_t part, int64_t begin, int64_t end) {
    for (int64_t k = row_start_[begin]; k < row_start_[end]; ++k) ++next[part][row_col[k]];
  });
  col_start_.assign(m_ + 1, 0);
  for (int64_t j = 0; j < m_; ++j) {
    int64_t slot = col_start_[j];
    for (std::vector<int64_t>& part_next : next) {
      const int64_t count = part_next[j];
      part_next[j] = slot;
      slot += count;
    }
    col_start_[j + 1] = slot;
  }
  int32_t* col_row = col_row_.Hold(entries_);
  float* col_value = col_value_.Hold(entries_);
  int64_t* col_entry = col_entry_.Hold(entries_);
  ParallelForParts(n_, part_count, [&](int64_t part, int64_t begin, int64_t end) {
    std::vector<int64_t>& part_next = next[part];
    for (int64_t i = begin; i < end; ++i) {
      for (int64_t k = row_start_[i]; k < row_start_[i + 1]; ++k) {
        const int64_t slot = part_next[row_col[k]]++;
        col_row[slot] = static_cast<int32_t>(i);
        col_value[slot] = row_value[k];
        col_entry[slot] = k;
      }
    }
  });
}

int64_t SparsePlanMatrix::KeepRows(int64_t begin, int64_t end, const KeepRule& rule,
                                   const PlanRowFn& log_plan_row, const PlanRowFn& plan_row,
                                   int64_t* counts, PartRows part) const {
  std::vector<double> row(m_), rank(m_), plan(plan_row ? m_ : 0);
  int64_t used = 0;
  for (int64_t i = begin; i < end; ++i) {
    log_plan_row(i, row.data());
    RankRow(row.data(), rule.row_weight[i], rule.col_weight, m_, rank.data());
    int64_t count = 0;
    for (int64_t j = 0; j < m_; ++j) count += rank[j] >= rule.threshold;
    counts[i] = count;
    if (count == 0) continue;
    if (plan_row) plan_row(i, plan.data());
    // Room for a whole row: the compaction without a branch writes one
    // column per entry, kept or not.
    int32_t* cols = part.cols->Grow(used, used + m_) + used;
    float* values = part.values->Grow(used, used + count) + used;
    // Compacted by a branch where few entries are kept (a predictor
    // learns it), without one where many are: a third of a point
    // cloud's entries are kept, in no pattern.
    if (count * 4 < m_) {
      for (int64_t j = 0, kept = 0; j < m_; ++j) {
        if (rank[j] >= rule.threshold) cols[kept++] = static_cast<int32_t>(j);
      }
    } else {
      ColumnsAtLeast(rank.data(), m_, rule.threshold, cols);
    }
    for (int64_t k = 0; k < count; ++k) {
      const int32_t j = cols[k];
      values[k] = static_cast<float>(plan_row ? plan[j] : std::exp(row[j]));
    }
    used += count;
  }
  return used;
}

double SparsePlanMatrix::Refresh(const RowValuesFn& row_values) {
  const int32_t* row_col = row_col_.array.data();
  float* row_value = row_value_.array.data();
  std::vector<double> row_mass(n_, 0.0);
  ForOutputs(n_, [&](int64_t begin, int64_t end) {
    std::vector<double> values;
    for (int64_t i = begin; i < end; ++i) {
      const int64_t first = row_start_[i], count = row_start_[i + 1] - first;
      if (count == 0) continue;
      values.resize(count);
      row_values(i, row_col + first, count, values.data());
      double mass = 0;
      for (int64_t k = 0; k < count; ++k) {
        mass += values[k];
        row_value[first + k] = static_cast<float>(values[k]);
      }
      row_mass[i] = mass;
    }
  });
  const int64_t* col_entry = col_entry_.array.data();
  float* col_value = col_value_.array.data();
  ForOutputs(m_, [&](int64_t begin, int64_t end) {
    for (int64_t slot = col_start_[begin]; slot < col_start_[end]; ++slot) {
      col_value[slot] = row_value[col_entry[slot]];
    }
  });
  double total = 0;
  for (double mass : row_mass) total += mass;
  return total;
}

// Splits `count` outputs over threads when each part gets at least about
// kMinEntriesPerPart of the `entries` to gather.
void SparsePlanMatrix::ForOutputs(int64_t count,
                                  const std::function<void(int64_t, int64_t)>& body) const {
  constexpr int64_t kMinEntriesPerPart = 1 << 14;
  const int64_t per_output = std::max<int64_t>(1, entries() / std::max<int64_t>(1, count));
  ParallelFor(count, threads_, body, std::max<int64_t>(1, kMinEntriesPerPart / per_output));
}

void SparsePlanMatrix::GatherAll(const std::vector<int64_t>& start, const int32_t* index,
                                 const float* values, const std::vector<double>& in,
                                 std::vector<double>* out) const {
  const int64_t count = static_cast<int64_t>(start.size()) - 1;
  out->resize(count);
  ForOutputs(count, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      (*out)[k] = Gather(index, values, start[k], start[k + 1], in.data());
    }
  });
}

void SparsePlanMatrix::Multiply(const std::vector<double>& in, std::vector<double>* out) const {
  GatherAll(row_start_, row_col_.array.data(), row_value_.array.data(), in, out);
}

void SparsePlanMatrix::MultiplyTransposed(const std::vector<double>& in,
                                          std::vector<double>* out) const {
  GatherAll(col_start_, col_row_.array.data(), col_value_.array.data(), in, out);
}

void SparsePlanMatrix::ColumnSquares(const std::vector<double>& w,
                                     std::vector<double>* out) const {
  const int32_t* col_row = col_row_.array.data();
  const float* col_value = col_value_.array.data();
  out->resize(m_);
  ForOutputs(m_, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      double sum = 0;
      for (int64_t k = col_start_[j]; k < col_start_[j + 1]; ++k) {
        const double value = col_value[k];
        sum += value * value * w[col_row[k]];
      }
      (*out)[j] = sum;
    }
  });
}

// Over the rows of positive weight alone (the coarse level's few seeds).
void SparsePlanMatrix::HeaviestWeightedRows(const std::vector<double>& weight,
                                            std::vector<int32_t>* rows) const {
  const int32_t* row_col = row_col_.array.data();
  const float* row_value = row_value_.array.data();
  rows->assign(m_, -1);
  std::vector<double> best(m_, 0.0);
  for (int64_t i = 0; i < n_; ++i) {
    if (!(weight[i] > 0)) continue;
    for (int64_t k = row_start_[i]; k < row_start_[i + 1]; ++k) {
      const double key = static_cast<double>(row_value[k]) * weight[i];
      TakeIfHeavier(key, i, &best[row_col[k]], &(*rows)[row_col[k]]);
    }
  }
}

void SparsePlanMatrix::GroupRowSums(const std::vector<int32_t>& group, int size,
                                    std::vector<double>* q) const {
  const int32_t* row_col = row_col_.array.data();
  const float* row_value = row_value_.array.data();
  q->assign(n_ * size, 0.0);
  ForOutputs(n_, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      double* out = &(*q)[i * size];
      for (int64_t k = row_start_[i]; k < row_start_[i + 1]; ++k) {
        const int32_t t = group[row_col[k]];
        if (t >= 0) out[t] += static_cast<double>(row_value[k]);
      }
    }
  });
}

}  // namespace solverd::ot::internal
