// Random ot problems for the kernel tests: uniform costs (the paper's
// random assignment when square) and uniform point clouds, both with
// uniform marginals, and densities on a grid.
#ifndef SOLVERD_TESTS_KERNELS_OT_TEST_UTIL_H_
#define SOLVERD_TESTS_KERNELS_OT_TEST_UTIL_H_

#include <cmath>
#include <random>
#include <vector>

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

// Two densities on a side x side grid of the unit square, each a mixture
// of three Gaussian bumps (bench/ot's densities_w{1,2} at side 28), with
// cost |x - y|^power summed over the axes: the W1 case for power 1, W2 for 2.
inline Problem GridDensities(int side, int power, double eta, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const int n = side * side;
  std::vector<double> x(n), y(n);
  for (int k = 0; k < n; ++k) {
    x[k] = (k / side) / (side - 1.0);
    y[k] = (k % side) / (side - 1.0);
  }
  Problem p;
  p.n = p.m = n;
  p.eta = eta;
  for (std::vector<double>* mass : {&p.a, &p.b}) {
    mass->assign(n, 0.0);
    for (int bump = 0; bump < 3; ++bump) {
      const double cx = u(rng), cy = u(rng), s = 0.05 + 0.15 * u(rng), weight = u(rng);
      for (int k = 0; k < n; ++k) {
        const double d2 = (x[k] - cx) * (x[k] - cx) + (y[k] - cy) * (y[k] - cy);
        (*mass)[k] += weight * std::exp(-d2 / (2 * s * s));
      }
    }
    double total = 0;
    for (double v : *mass) total += v;
    for (double& v : *mass) v /= total;
  }
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      p.cost.push_back(std::pow(std::fabs(x[i] - x[j]), power) +
                       std::pow(std::fabs(y[i] - y[j]), power));
    }
  }
  return p;
}

}  // namespace solverd::ot

#endif  // SOLVERD_TESTS_KERNELS_OT_TEST_UTIL_H_
