#include "ot/coarse_space.h"

#include <algorithm>
#include <cmath>

#include "common/cpu_clones.h"

namespace solverd::ot::internal {
namespace {

// Seeds at most (and at most a quarter of the active columns, so that an
// aggregate holds several). In a numpy model of bench/ot's cases (CG
// steps to a relative residual of 1e-3, Jacobi -> 16 / 32 / 64 / 128
// seeds): pot_n2000 20 -> 10 / 10 / 8 / 6, 28 x 28 W2 density 29 -> 22 /
// 17 / 12 / 11, W1 35 -> 37 / 30 / 25 / 17. In the solver on pot_n2000,
// 64 seeds took the same Newton steps and CG steps within one of 32 (4,
// 4, 6 against 4, 3, 6) but 3.1 ms to set up the system where 32 took
// 1.9 ms (the coarse matrix costs n size^2, its inverse size^3).
constexpr int kCoarseSeeds = 32;
// Sparse plans with fewer entries per column get Jacobi alone: their S is
// not Laplacian-like but close to its diagonal where Jacobi does well. On
// random assignment (n = 500, 10 entries a column) the numpy model took as
// many CG steps with it, and in the solver building it took 0.25 ms a
// Newton step, more than the CG solve (0.1-0.25 ms): SNS 6.1 ms, not 4.2.
constexpr int64_t kMinEntriesPerColumn = 32;

// The rows that seed the aggregates: spread evenly over the indices, rows
// of zero mass left out. weight[i] = 1 / sqrt(r_i) on them, 0 elsewhere.
std::vector<double> SeedWeights(const std::vector<double>& inv_dr, int seeds) {
  const int64_t n = static_cast<int64_t>(inv_dr.size());
  std::vector<double> weight(n, 0.0);
  for (int t = 0; t < seeds; ++t) {
    const int64_t i = static_cast<int64_t>((t + 0.5) * n / seeds);
    weight[i] = std::sqrt(inv_dr[i]);
  }
  return weight;
}

// aggregate[j] = index of the seed row heaviest in active column j among
// those with one in it, numbered 0.. in row order; returns the number.
int NumberAggregates(const std::vector<int32_t>& seed_rows, const std::vector<double>& active,
                     int64_t n, std::vector<int32_t>* aggregate) {
  std::vector<int32_t> number(n, -1);
  for (size_t j = 0; j < seed_rows.size(); ++j) {
    if (active[j] != 0 && seed_rows[j] >= 0) number[seed_rows[j]] = 0;
  }
  int size = 0;
  for (int32_t& k : number) {
    if (k == 0) k = size++;
  }
  aggregate->resize(seed_rows.size());
  for (size_t j = 0; j < seed_rows.size(); ++j) {
    (*aggregate)[j] = active[j] != 0 && seed_rows[j] >= 0 ? number[seed_rows[j]] : -1;
  }
  return size;
}

// Rows of Q transposed at a time for the coarse matrix's dot products:
// their transpose stays in the first-level cache.
constexpr int64_t kGramRows = 64;

// a[t * size + u] -= sum_i w_i qt[t * rows + i] qt[u * rows + i] for u >=
// t: the upper triangle of Q^T diag(w) Q over `rows` rows of Q, given
// their transpose qt (size x rows), four columns of the result at a time.
SOLVERD_CPU_CLONES void SubtractWeightedGram(const double* qt, const double* w, int64_t rows,
                                             int size, double* a) {
  for (int t = 0; t < size; ++t) {
    const double* qt_t = qt + t * rows;
    int u = t;
    for (; u + 4 <= size; u += 4) {
      const double *q0 = qt + u * rows, *q1 = q0 + rows, *q2 = q1 + rows, *q3 = q2 + rows;
      double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
      for (int64_t i = 0; i < rows; ++i) {
        const double wq = w[i] * qt_t[i];
        s0 += wq * q0[i];
        s1 += wq * q1[i];
        s2 += wq * q2[i];
        s3 += wq * q3[i];
      }
      a[t * size + u] -= s0;
      a[t * size + u + 1] -= s1;
      a[t * size + u + 2] -= s2;
      a[t * size + u + 3] -= s3;
    }
    for (; u < size; ++u) {
      const double* q_u = qt + u * rows;
      double sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < rows; ++i) sum += w[i] * qt_t[i] * q_u[i];
      a[t * size + u] -= sum;
    }
  }
}

// R S R^T = R diag(dc) R^T - Q^T diag(inv_dr) Q for Q = Ps R^T (q, n x
// size, row-major), by dot products over blocks of Q's rows transposed:
// as a loop over Q's rows, each subtracting its outer product, it took
// 0.6 ms at n = 2000, the dot products a fifth of that.
std::vector<double> CoarseMatrix(const SchurSystem& s, const std::vector<double>& q,
                                 int size) {
  const int64_t n = static_cast<int64_t>(s.inv_dr.size());
  std::vector<double> a(static_cast<size_t>(size) * size, 0.0);
  for (size_t j = 0; j < s.dc.size(); ++j) {
    const int t = s.coarse.aggregate[j];
    if (t >= 0) a[static_cast<size_t>(t) * size + t] += s.dc[j];
  }
  std::vector<double> block(static_cast<size_t>(size) * kGramRows);
  for (int64_t first = 0; first < n; first += kGramRows) {
    const int64_t rows = std::min(kGramRows, n - first);
    for (int64_t i = 0; i < rows; ++i) {
      for (int t = 0; t < size; ++t) block[t * rows + i] = q[(first + i) * size + t];
    }
    SubtractWeightedGram(block.data(), &s.inv_dr[first], rows, size, a.data());
  }
  for (int t = 0; t < size; ++t) {
    for (int u = 0; u < t; ++u) a[t * size + u] = a[u * size + t];
  }
  return a;
}

// The inverse of the symmetric a (size x size) by Cholesky, a = L L^T and
// a^-1 = L^-T L^-1; false when a pivot is not positive or an entry of the
// inverse not finite.
bool InvertPositiveDefinite(std::vector<double> a, int size, std::vector<double>* inverse) {
  const auto at = [size](std::vector<double>& v, int r, int c) -> double& {
    return v[static_cast<size_t>(r) * size + c];
  };
  for (int c = 0; c < size; ++c) {  // L in the lower triangle of a
    for (int k = 0; k < c; ++k) at(a, c, c) -= at(a, c, k) * at(a, c, k);
    if (!(at(a, c, c) > 0)) return false;
    at(a, c, c) = std::sqrt(at(a, c, c));
    for (int r = c + 1; r < size; ++r) {
      for (int k = 0; k < c; ++k) at(a, r, c) -= at(a, r, k) * at(a, c, k);
      at(a, r, c) /= at(a, c, c);
    }
  }
  std::vector<double> l_inverse(static_cast<size_t>(size) * size, 0.0);
  for (int e = 0; e < size; ++e) {  // column e of L^-1, zero above row e
    for (int r = e; r < size; ++r) {
      double v = r == e ? 1.0 : 0.0;
      for (int k = e; k < r; ++k) v -= at(a, r, k) * at(l_inverse, k, e);
      at(l_inverse, r, e) = v / at(a, r, r);
    }
  }
  inverse->resize(static_cast<size_t>(size) * size);
  for (int r = 0; r < size; ++r) {  // (L^-T L^-1)_rc = sum_k>=max(r,c) L^-1_kr L^-1_kc
    for (int c = r; c < size; ++c) {
      double v = 0;
      for (int k = c; k < size; ++k) v += at(l_inverse, k, r) * at(l_inverse, k, c);
      if (!std::isfinite(v)) return false;
      at(*inverse, r, c) = v;
      at(*inverse, c, r) = v;
    }
  }
  return true;
}

}  // namespace

Status CoarseSpaceBuilder::Build(OtBackend& backend, int64_t kept, SchurSystem* system) {
  int size = 0;
  SOLVERD_RETURN_IF_ERROR(Aggregate(backend, kept, system, &size));
  if (size == 0) return Status::Ok();
  SOLVERD_RETURN_IF_ERROR(backend.SparseGroupRowSums(system->coarse.aggregate, size, &q_));
  Finish(size, system);
  return Status::Ok();
}

Status CoarseSpaceBuilder::Aggregate(OtBackend& backend, int64_t kept, SchurSystem* system,
                                     int* size) {
  CoarseSpace& coarse = system->coarse;
  coarse = CoarseSpace();
  *size = 0;
  if (kept < kMinEntriesPerColumn * static_cast<int64_t>(system->active.size())) {
    return Status::Ok();
  }
  int64_t active = 0;
  for (double v : system->active) active += v != 0;
  const int64_t n = static_cast<int64_t>(system->inv_dr.size());
  const int seeds = static_cast<int>(std::min<int64_t>({kCoarseSeeds, active / 4, n}));
  if (seeds < 2) return Status::Ok();
  std::vector<int32_t> seed_rows;
  SOLVERD_RETURN_IF_ERROR(
      backend.SparseHeaviestWeightedRows(SeedWeights(system->inv_dr, seeds), &seed_rows));
  const int groups = NumberAggregates(seed_rows, system->active, n, &coarse.aggregate);
  if (groups >= 2) *size = groups;
  return Status::Ok();
}

void CoarseSpaceBuilder::Finish(int size, SchurSystem* system) {
  CoarseSpace& coarse = system->coarse;
  if (size > 0 &&
      InvertPositiveDefinite(CoarseMatrix(*system, q_, size), size, &coarse.inverse)) {
    coarse.size = size;
  } else {
    coarse = CoarseSpace();
  }
}

}  // namespace solverd::ot::internal
