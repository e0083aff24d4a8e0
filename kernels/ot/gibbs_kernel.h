// GibbsKernel: the CPU backend's Sinkhorn in scaling form.
//
// At potentials (x0, y0) it stores K_ij = exp(eta (x0_i + y0_j - C_ij) - 1),
// the plan there, and represents later potentials by scalings:
//   P_ij = u_i K_ij v_j,   x_i = x0_i + log(u_i) / eta,   y_j likewise.
// A Sinkhorn iteration is then one streaming pass over K and no
// exponentials: each row's (K v)_i gives u_i, and the same pass adds
// u_i K_ij into the column sums that give v. Log-domain half-steps spend
// an exp per entry each, two per iteration, which made them compute-bound.
//
// Scalings stay within [1/kMaxScaling, kMaxScaling], and the row and column
// sums they come from must be well inside double range; when an iteration
// would leave either, it changes nothing and says so, and the caller
// re-absorbs the scalings into (x0, y0) with Rebuild() (the log-stabilised
// scaling of Schmitzer, 2019), or takes a log-domain step first.
// Not thread-safe; uses up to `threads` threads inside each call.
#ifndef SOLVERD_KERNELS_OT_GIBBS_KERNEL_H_
#define SOLVERD_KERNELS_OT_GIBBS_KERNEL_H_

#include <cstdint>
#include <vector>

namespace solverd::ot::internal {

// Plan sums a scaling may be computed from; outside this range the
// potential must come from an exact log-sum-exp instead.
inline constexpr double kMinUsableSum = 1e-290;
inline constexpr double kMaxUsableSum = 1e290;

class GibbsKernel {
 public:
  // K costs n * m doubles on top of C; larger problems stay log-domain.
  static constexpr int64_t kMaxBytes = int64_t{1} << 30;
  static bool Fits(int64_t n, int64_t m) { return n * m <= kMaxBytes / 8; }

  // `cost` (n x m, row-major) must outlive the kernel.
  GibbsKernel(const double* cost, int64_t n, int64_t m, double eta, int threads);

  // Sets (x0, y0) = (x, y) and u = v = 1, recomputing K: one exp pass.
  void Rebuild(const std::vector<double>& x, const std::vector<double>& y);

  // One Sinkhorn iteration. Measures ||P1 - a||_1 at the current scalings
  // into *row_error; then, unless that is <= keep_below, sets u to balance
  // the rows and v to balance the columns, and *updated. Returns false,
  // with nothing changed, when a sum or scaling leaves the usable range.
  bool Iterate(const std::vector<double>& a, const std::vector<double>& b, double keep_below,
               double* row_error, bool* updated);

  // Sets the scalings that stand for potentials (x, y); false, with
  // nothing changed, when one is out of range (x far from x0).
  bool SetPotentials(const std::vector<double>& x, const std::vector<double>& y);

  // r = P1 at the current scalings: one pass over K.
  void RowSums(std::vector<double>* r) const;
  // r = P1 and c = P^T 1 at the current scalings: one pass over K.
  void Marginals(std::vector<double>* r, std::vector<double>* c);

  // The potentials the scalings stand for.
  void Potentials(std::vector<double>* x, std::vector<double>* y) const;

 private:
  // How many threads a pass over K is worth (each takes a block of rows).
  int64_t Parts() const;
  // Calls row(part, i, K_i, columns) for every row i, a block of rows per
  // thread, each part with its own zeroed column accumulator; leaves their
  // sum in column_partials_[0].
  template <typename RowFn>
  void ColumnPass(const RowFn& row);

  const double* const cost_;
  const int64_t n_, m_;
  const double eta_;
  const int threads_;
  std::vector<double> kernel_;  // n x m, row-major
  std::vector<double> x0_, y0_, u_, v_;
  std::vector<double> next_u_;
  std::vector<std::vector<double>> column_partials_;  // one per part
};

}  // namespace solverd::ot::internal

#endif  // SOLVERD_KERNELS_OT_GIBBS_KERNEL_H_
