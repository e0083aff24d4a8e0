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
//
// K may be stored in single precision where the tolerance leaves room for
// its rounding: a pass then streams half the bytes, and at n = 500 each
// thread's rows of K stay in its L2 cache (the double kernel did not; the
// pass was bound by L3 bandwidth). Sums stay in double. Every entry is off
// by at most 2^-24 of itself (scalings are kept within 1e12, so entries
// that were subnormal in K add under 1e-20 of mass), so a row or column
// sum of the plan is off by at most 2^-24 of it, and Iterate() reports the
// measured row error plus RoundingBound() = 2^-23 * mass: what it reports
// bounds the L1 marginal error of the plan the potentials stand for.
//
// In double precision K also keeps a single-precision copy, made on the
// first product after a Rebuild(), for the products of the Newton system
// (PlanTimes() and the like): they only shape a Newton direction, whose
// steps the line search judges by the exact marginals. On a 2000 x 2000
// plan a product then takes 0.23 ms instead of 0.41, CG's product 0.40
// instead of 0.68.
// Not thread-safe; uses up to `threads` threads inside each call.
#ifndef SOLVERD_KERNELS_OT_GIBBS_KERNEL_H_
#define SOLVERD_KERNELS_OT_GIBBS_KERNEL_H_

#include <cstdint>
#include <vector>

#include "common/huge_page_array.h"
#include "ot/sinkhorn_math.h"

namespace solverd::ot::internal {

// Plan sums a scaling may be computed from; outside this range the
// potential must come from an exact log-sum-exp instead.
inline constexpr double kMinUsableSum = 1e-290;
inline constexpr double kMaxUsableSum = 1e290;

enum class KernelPrecision { kDouble, kSingle };

class GibbsKernel {
 public:
  // K costs n * m doubles (single ones may turn double) on top of C; larger
  // problems stay log-domain. The single copy of a double K comes where
  // both fit in kMaxBytes.
  static constexpr int64_t kMaxBytes = int64_t{1} << 30;
  static bool Fits(int64_t n, int64_t m) { return n * m <= kMaxBytes / 8; }
  // Single precision when its rounding bound is at most an eighth of the
  // tolerance on the L1 marginal error (a plan of total mass `mass`): the
  // few more iterations it takes to get below the rest cost far less than
  // the halved passes save. At mass 1 that is a tolerance of 9.6e-7 and up.
  static KernelPrecision PrecisionFor(double tolerance, double mass) {
    return tolerance >= 8 * SingleRoundingBound(mass) ? KernelPrecision::kSingle
                                                      : KernelPrecision::kDouble;
  }
  static double SingleRoundingBound(double mass) { return 0x1p-23 * mass; }
  // Whether K takes at most kSmallBytes in double. There a Sinkhorn
  // iteration costs about what it does in single precision (point clouds,
  // n = 200 / 500 / 1000, best of 4 x 30 solves on the dev VM: 0.75 / 3.09
  // / 10.2 ms against 0.81 / 3.07 / 9.9; at n = 2000 double took 34% more),
  // and a solve that may go on to Newton steps (auto) keeps it in double so
  // as not to rebuild it when it does (auto 0.81 / 3.08 / 8.3 ms against
  // 0.88 / 3.30 / 9.0 ms).
  static constexpr int64_t kSmallBytes = int64_t{8} << 20;
  static bool SmallInDouble(int64_t n, int64_t m) { return n * m <= kSmallBytes / 8; }

  // `cost` (n x m, row-major) must outlive the kernel; `mass` is sum(a).
  GibbsKernel(const double* cost, int64_t n, int64_t m, double eta, int threads,
              KernelPrecision precision = KernelPrecision::kDouble, double mass = 1);

  // What Iterate() adds to the error it measures for K's rounding: 0 in
  // double precision (whose rounding is that of the log-domain sums too).
  double RoundingBound() const { return rounding_bound_; }
  bool single_precision() const { return single_; }
  // K in double from now on, once rebuilt (SetPotentials() fails until then):
  // Newton's line search compares objectives closer than K's rounding.
  void UseDoublePrecision();

  // Sets (x0, y0) = (x, y) and u = v = 1, recomputing K: one exp pass.
  void Rebuild(const std::vector<double>& x, const std::vector<double>& y);

  // One Sinkhorn iteration. Measures ||P1 - a||_1 at the current scalings
  // into *row_error; then, unless that is <= keep_below, sets u to balance
  // the rows and v to balance the columns, over-relaxed (sinkhorn_math.h),
  // and *updated, with the column error the relaxed step leaves in
  // *column_error. Returns false, with nothing changed, when a sum or
  // scaling leaves the usable range.
  bool Iterate(const std::vector<double>& a, const std::vector<double>& b,
               const Relaxation& relaxation, double keep_below, double* row_error,
               bool* updated, double* column_error);

  // Sets the scalings that stand for potentials (x, y); false, with
  // nothing changed, when one is out of range (x far from x0).
  bool SetPotentials(const std::vector<double>& x, const std::vector<double>& y);

  // r = P1 at the current scalings: one pass over K.
  void RowSums(std::vector<double>* r) const;
  // r = P1 and c = P^T 1 at the current scalings: one pass over K.
  void Marginals(std::vector<double>* r, std::vector<double>* c);

  // out[j] = P_ij = u_i K_ij v_j for j < m: row i of the plan, no exp.
  void PlanRow(int64_t i, double* out) const;
  // Products with the plan at the current scalings, one pass over K each
  // (SNS's Newton systems where it keeps the whole plan): out = P v (size
  // n), out = P^T w (size m), out_j = sum_i P_ij^2 w_i, and out = P^T
  // diag(w) P v, whose row dots and column sums share the pass.
  void PlanTimes(const std::vector<double>& v, std::vector<double>* out);
  void PlanTransposeTimes(const std::vector<double>& w, std::vector<double>* out);
  void PlanColumnSquares(const std::vector<double>& w, std::vector<double>* out);
  void PlanGramTimes(const std::vector<double>& w, const std::vector<double>& v,
                     std::vector<double>* out, std::vector<double>* plan_v = nullptr);
  // q[i * size + group[j]] = sum of P_ij over the columns j of each group
  // (group of size m, in [0, size) or -1 for none; q of n * size).
  void PlanGroupRowSums(const std::vector<int32_t>& group, int size,
                        std::vector<double>* q) const;
  // PlanTransposeTimes(w), PlanColumnSquares(square_weights) and, unless
  // size is 0, PlanGroupRowSums(group, size) in one pass: the group sums
  // gather from rows the column sums have just read.
  void PlanSchurSetup(const std::vector<double>& w, const std::vector<double>& square_weights,
                      const std::vector<int32_t>& group, int size, std::vector<double>* back,
                      std::vector<double>* squares, std::vector<double>* q);
  // For each column j, the row i with weight[i] > 0 maximising P_ij
  // weight[i] (TakeIfHeavier()), -1 where none has weight: rows of P
  // computed for the weighted rows alone.
  void PlanHeaviestWeightedRows(const std::vector<double>& weight,
                                std::vector<int32_t>* rows) const;
  // out[k] = P_ij for j = columns[k], k < count: kept entries of row i.
  void PlanAt(int64_t i, const int32_t* columns, int64_t count, double* out) const;

  // sum_ij P_ij C_ij and sum_ij P_ij log P_ij at the current scalings: one
  // pass over K and C, no exp (log P_ij = eta (x_i + y_j - C_ij) - 1 at
  // the potentials the scalings stand for). Each P_ij is K's, so in single
  // precision both are within 2^-24 of the plan's (relative, term by term).
  void PlanTotals(double* transport_cost, double* plogp) const;

  // The potentials the scalings stand for.
  void Potentials(std::vector<double>* x, std::vector<double>* y) const;

 private:
  // How many threads a pass over K is worth (each takes a block of rows).
  int64_t Parts() const;
  // r_i = u_i (K v)_i for the given v (size m): a pass over K.
  void RowDots(const double* v, std::vector<double>* r) const;
  // out_j = scale[j] times ColumnPass()'s sum for column j (in its
  // accumulator `which`).
  void ScaledColumns(const double* scale, std::vector<double>* out, int which = 0) const;
  // Calls block(part, first, count, K_first, columns) for every block of
  // count <= kRowBlock rows from row `first` (K_first a const double* or
  // const float* to its first row), a run of blocks per thread, each part
  // with its own zeroed column accumulators (`accumulators` of m, one
  // after another); leaves their sums in column_partials_[0].
  template <typename BlockFn>
  void ColumnPass(const BlockFn& block);
  template <typename T, typename BlockFn>
  void ColumnPassOver(const T* kernel, const BlockFn& block, int accumulators = 1);
  // ColumnPass() over the storage WithProductKernel() picks.
  template <typename BlockFn>
  void ProductPass(const BlockFn& block, int accumulators = 1);
  // Calls fn(K) with K itself (const float* or const double*, as stored).
  template <typename Fn>
  void WithStoredKernel(const Fn& fn) const;
  // Calls fn(K) with K the storage the Newton system's products read: the
  // single copy while it stands for the plan within its rounding
  // (scalings within kMaxSingleScaling), else K as stored.
  template <typename Fn>
  void WithProductKernel(const Fn& fn) const;
  // Makes product_copy_ current (a pass over K) unless it is; false
  // without product_copy_fits_.
  bool MakeProductCopy() const;
  // Asks the cache for `count` rows of K from row `first` on, for passes
  // that read rows out of order (PlanGroupRowSums: 1.2 -> 0.9 ms at n =
  // 2000), which the hardware prefetcher does not follow.
  template <typename T>
  void PrefetchRows(const T* kernel, int64_t first, int64_t count) const;
  template <typename T>
  void RowDotsOver(const T* kernel, const double* v, std::vector<double>* r) const;

  const double* const cost_;
  const int64_t n_, m_;
  const double eta_;
  const int threads_;
  bool single_;
  double max_scaling_, rounding_bound_;
  HugePageArray<double> kernel_;  // n x m, row-major, in double precision
  HugePageArray<float> kernel_single_;  // or in single
  // K in single beside K in double, made on the first product after a
  // Rebuild(): solves that never ask for one (Sinkhorn, SNS on a sparse
  // plan) pay neither its pass nor its memory.
  mutable HugePageArray<float> product_copy_;
  mutable bool product_copy_current_ = false;
  // Whether K may have the copy: it fits in kMaxBytes beside K, and the
  // plan's mass leaves K's entries far inside single precision's range
  // (they are the plan's at the last Rebuild()).
  const bool product_copy_fits_;
  std::vector<double> x0_, y0_, u_, v_;
  std::vector<double> next_u_;
  std::vector<std::vector<double>> column_partials_;  // one per part
};

}  // namespace solverd::ot::internal

#endif  // SOLVERD_KERNELS_OT_GIBBS_KERNEL_H_
