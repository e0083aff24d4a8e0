// Random ot problems for the kernel tests: uniform costs (the paper's
// random assignment when square) and uniform point clouds, both with
// uniform marginals.
#ifndef SOLVERD_TESTS_KERNELS_OT_TEST_UTIL_H_
#define SOLVERD_TESTS_KERNELS_OT_TEST_UTIL_H_

#include <random>

#include "ot/ot.h"

namespace solverd::ot {

// n x m costs uniform in [0, 1).
inline Problem RandomCost(int n, int m, double eta, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  Problem p;
  p.n = n;
  p.m = m;
  for (int e = 0; e < n * m; ++e) p.cost.push_back(u(rng));
  p.a.assign(n, 1.0 / n);
  p.b.assign(m, 1.0 / m);
  p.eta = eta;
  return p;
}

// Two clouds of n and m points uniform in the unit square, squared
// Euclidean cost.
inline Problem RandomPointClouds(int n, int m, double eta, unsigned seed, int dim = 2) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  Problem p;
  p.n = n;
  p.m = m;
  p.dim = dim;
  for (int i = 0; i < n * dim; ++i) p.x_points.push_back(u(rng));
  for (int j = 0; j < m * dim; ++j) p.y_points.push_back(u(rng));
  p.a.assign(n, 1.0 / n);
  p.b.assign(m, 1.0 / m);
  p.eta = eta;
  return p;
}

}  // namespace solverd::ot

#endif  // SOLVERD_TESTS_KERNELS_OT_TEST_UTIL_H_
