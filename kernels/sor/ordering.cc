#include "sor/ordering.h"

#include <algorithm>
#include <numeric>

namespace solverd::sor {
namespace {

// Row i's neighbours in the pattern of A + A^T, without i itself.
std::vector<std::vector<int32_t>> SymmetricNeighbours(const CsrMatrix& a) {
  std::vector<std::vector<int32_t>> adj(a.n);
  for (int32_t i = 0; i < a.n; ++i) {
    for (int64_t k = a.row_ptr[i]; k < a.row_ptr[i + 1]; ++k) {
      const int32_t j = a.col_idx[k];
      if (j == i) continue;
      adj[i].push_back(j);
      adj[j].push_back(i);
    }
  }
  for (auto& list : adj) {
    std::sort(list.begin(), list.end());
    list.erase(std::unique(list.begin(), list.end()), list.end());
  }
  return adj;
}

}  // namespace

SweepOrder NaturalOrder(int32_t n) {
  SweepOrder order;
  order.rows.resize(n);
  std::iota(order.rows.begin(), order.rows.end(), 0);
  order.group_ptr = {0, n};
  order.parallel = false;
  return order;
}

SweepOrder MulticolorOrder(const CsrMatrix& a) {
  const std::vector<std::vector<int32_t>> adj = SymmetricNeighbours(a);
  // First-fit in natural order: on a grid stencil this is the checkerboard.
  std::vector<int32_t> color(a.n, -1);
  std::vector<int32_t> seen_by(a.n + 1, -1);  // colour c is used by a neighbour of row seen_by[c]
  int32_t colors = 0;
  for (int32_t i = 0; i < a.n; ++i) {
    for (int32_t j : adj[i]) {
      if (color[j] >= 0) seen_by[color[j]] = i;
    }
    int32_t c = 0;
    while (seen_by[c] == i) ++c;
    color[i] = c;
    colors = std::max(colors, c + 1);
  }
  SweepOrder order;
  order.parallel = true;
  order.group_ptr.assign(colors + 1, 0);
  for (int32_t c : color) ++order.group_ptr[c + 1];
  std::partial_sum(order.group_ptr.begin(), order.group_ptr.end(), order.group_ptr.begin());
  order.rows.resize(a.n);
  std::vector<int64_t> next(order.group_ptr.begin(), order.group_ptr.end() - 1);
  for (int32_t i = 0; i < a.n; ++i) order.rows[next[color[i]]++] = i;
  return order;
}

CsrMatrix RowsInSweepOrder(const CsrMatrix& a, const SweepOrder& order) {
  CsrMatrix out;
  out.n = a.n;
  out.row_ptr.reserve(a.n + 1);
  out.row_ptr.push_back(0);
  out.col_idx.reserve(a.nnz());
  for (int32_t i : order.rows) {
    out.col_idx.insert(out.col_idx.end(), a.col_idx.begin() + a.row_ptr[i],
                       a.col_idx.begin() + a.row_ptr[i + 1]);
    out.row_ptr.push_back(static_cast<int64_t>(out.col_idx.size()));
  }
  out.values = ValuesInSweepOrder(a, order);
  return out;
}

std::vector<double> ValuesInSweepOrder(const CsrMatrix& a, const SweepOrder& order) {
  std::vector<double> values;
  values.reserve(a.nnz());
  for (int32_t i : order.rows) {
    values.insert(values.end(), a.values.begin() + a.row_ptr[i],
                  a.values.begin() + a.row_ptr[i + 1]);
  }
  return values;
}

bool SamePattern(const CsrMatrix& a, const CsrMatrix& b) {
  return a.n == b.n && a.row_ptr == b.row_ptr && a.col_idx == b.col_idx;
}

}  // namespace solverd::sor
