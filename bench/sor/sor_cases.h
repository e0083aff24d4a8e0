// The benchmark's two sequences of linear systems, after "Learning to
// Relax" (Khodak et al., ICLR 2024), as generators any solver can consume.
#ifndef SOLVERD_BENCH_SOR_SOR_CASES_H_
#define SOLVERD_BENCH_SOR_SOR_CASES_H_

#include <cstdint>
#include <random>
#include <vector>

#include "sor/csr.h"

namespace solverd::bench {

// Synthetic: A_t = L + c_t I with L the 5-point Laplacian on a 10 x 10
// grid, c_t = -0.15 + 0.6 B, B ~ Beta(beta_a, beta_b); b_t a Gaussian
// vector with norm truncated to at most sqrt(n). Instances are drawn up
// front so every system sees the same ones.
struct SyntheticInstance {
  double shift;
  std::vector<double> b;
};
std::vector<SyntheticInstance> SyntheticSequence(double beta_a, double beta_b, int count,
                                                 uint64_t seed);
// The optimal SOR omega for L + c I from its Jacobi spectral radius.
double InstanceOptimalOmega(double shift);

// Heat equation u_t = kappa(t) (u_xx + u_yy) + f on the unit square,
// Dirichlet zero boundary, (nx - 1)^2 interior points, Crank-Nicolson with
// dt = 1e-3: each step solves A_t u' = B_t u + dt f with
// A_t = I - (dt/2) kappa(t) Lap (SPD). kappa is periodic in t; f a source
// circling the centre.
class HeatEquation {
 public:
  explicit HeatEquation(int nx);
  int unknowns() const { return laplacian_.n; }
  double Kappa(int step) const;
  // A_t for `step` (same pattern every step) and its right-hand side for
  // the current solution u.
  const solverd::sor::CsrMatrix& Matrix(int step);
  std::vector<double> RightHandSide(int step, const std::vector<double>& u) const;
  std::vector<double> InitialState() const;

 private:
  int nx_;
  double h_;
  solverd::sor::CsrMatrix laplacian_;  // 4 on the diagonal, -1 off: -h^2 Lap
  solverd::sor::CsrMatrix a_;
};

}  // namespace solverd::bench

#endif  // SOLVERD_BENCH_SOR_SOR_CASES_H_
