#include "ot/coarse_space.h"

#include <algorithm>
#include <cmath>

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

// R S R^T = R diag(dc) R^T - Q^T diag(inv_dr) Q for Q = Ps R^T (q, n x
// size), row-major; each row of Q subtracts its outer product, a whole
// row of the result per aggregate the row touches (a vector loop: over
// the touched ones alone it took 2.5 ms at n = 2000, as much as the CG).
std::vector<double> CoarseMatrix(const SchurSystem& s, const std::vector<double>& q, int size) {
  std::vector<double> a(static_cast<size_t>(size) * size, 0.0);
  for (size_t j = 0; j < s.dc.size(); ++j) {
    const int t = s.coarse.aggregate[j];
    if (t >= 0) a[static_cast<size_t>(t) * size + t] += s.dc[j];
  }
  for (size_t i = 0; i < s.inv_dr.size(); ++i) {
    const double* row = &q[i * size];
    for (int t = 0; t < size; ++t) {
      if (row[t] == 0) continue;
      const double scaled = s.inv_dr[i] * row[t];
      double* out = &a[static_cast<size_t>(t) * size];
#pragma omp simd
      for (int u = 0; u < size; ++u) out[u] -= scaled * row[u];
    }
  }
  return a;
}

// The inverse of the symmetric a (size x size) by Cholesky; false when a
// pivot is not positive or an entry of the inverse not finite.
bool InvertPositiveDefinite(std::vector<double> a, int size, std::vector<double>* inverse) {
  const auto at = [size](std::vector<double>& v, int r, int c) -> double& {
    return v[static_cast<size_t>(r) * size + c];
  };
  for (int c = 0; c < size; ++c) {  // a = L L^T, L in the lower triangle
    for (int k = 0; k < c; ++k) at(a, c, c) -= at(a, c, k) * at(a, c, k);
    if (!(at(a, c, c) > 0)) return false;
    at(a, c, c) = std::sqrt(at(a, c, c));
    for (int r = c + 1; r < size; ++r) {
      for (int k = 0; k < c; ++k) at(a, r, c) -= at(a, r, k) * at(a, c, k);
      at(a, r, c) /= at(a, c, c);
    }
  }
  inverse->assign(static_cast<size_t>(size) * size, 0.0);
  std::vector<double> col(size);
  for (int e = 0; e < size; ++e) {  // column e of L^-T L^-1
    for (int r = 0; r < size; ++r) {
      double v = r == e ? 1.0 : 0.0;
      for (int k = 0; k < r; ++k) v -= at(a, r, k) * col[k];
      col[r] = v / at(a, r, r);
    }
    for (int r = size - 1; r >= 0; --r) {
      double v = col[r];
      for (int k = r + 1; k < size; ++k) v -= at(a, k, r) * col[k];
      col[r] = v / at(a, r, r);
    }
    for (int r = 0; r < size; ++r) {
      if (!std::isfinite(col[r])) return false;
      at(*inverse, r, e) = col[r];
    }
  }
  return true;
}

}  // namespace

Status BuildCoarseSpace(OtBackend& backend, int64_t kept, SchurSystem* system) {
  CoarseSpace& coarse = system->coarse;
  coarse = CoarseSpace();
  if (kept < kMinEntriesPerColumn * static_cast<int64_t>(system->dc.size())) {
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
  const int size = NumberAggregates(seed_rows, system->active, n, &coarse.aggregate);
  if (size < 2) return Status::Ok();
  std::vector<double> q;
  SOLVERD_RETURN_IF_ERROR(backend.SparseGroupRowSums(coarse.aggregate, size, &q));
  if (InvertPositiveDefinite(CoarseMatrix(*system, q, size), size, &coarse.inverse)) {
    coarse.size = size;
  } else {
    coarse = CoarseSpace();
  }
  return Status::Ok();
}

}  // namespace solverd::ot::internal
