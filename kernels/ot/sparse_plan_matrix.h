// SparsePlanMatrix: the CPU backend's sparsified plan Ps of the Newton
// stage, stored both by rows and by columns so that Ps v and Ps^T u are
// each a gather (one running sum per output) rather than a scatter.
// Not thread-safe: one solver thread builds it, then any number may
// read it concurrently.
#ifndef SOLVERD_KERNELS_OT_SPARSE_PLAN_MATRIX_H_
#define SOLVERD_KERNELS_OT_SPARSE_PLAN_MATRIX_H_

#include <cstdint>
#include <functional>
#include <vector>

namespace solverd::ot::internal {

class SparsePlanMatrix {
 public:
  // Keeps the entries P_ij with log P_ij >= log_threshold, where
  // log_plan_row(i, out) writes log P_i. into out[0, m), and plan_row (if
  // set) P_i. itself, which is otherwise exp of the log (when P is at hand
  // without an exp, as the CPU's cached kernel has it); rows on up to
  // `threads` threads. log_plan_row is called twice per row (count, then
  // fill), so it must be pure. The products use the same threads.
  using PlanRowFn = std::function<void(int64_t i, double* out)>;
  void Build(int64_t n, int64_t m, int threads, double log_threshold,
             const PlanRowFn& log_plan_row, const PlanRowFn& plan_row = nullptr);

  int64_t entries() const { return static_cast<int64_t>(row_value_.size()); }
  // out = Ps in (in of size m, out of size n).
  void Multiply(const std::vector<double>& in, std::vector<double>* out) const;
  // out = Ps^T in (in of size n, out of size m).
  void MultiplyTransposed(const std::vector<double>& in, std::vector<double>* out) const;
  // out_j = sum_i Ps_ij^2 w_i.
  void ColumnSquares(const std::vector<double>& w, std::vector<double>* out) const;

 private:
  // Runs body over [0, count) outputs, on threads when there is enough work.
  void ForOutputs(int64_t count, const std::function<void(int64_t, int64_t)>& body) const;
  // out_k = sum of values[e] * in[index[e]] over e in [start[k], start[k+1]).
  void GatherAll(const std::vector<int64_t>& start, const std::vector<int64_t>& index,
                 const std::vector<double>& values, const std::vector<double>& in,
                 std::vector<double>* out) const;

  int64_t n_ = 0, m_ = 0;
  int threads_ = 1;
  std::vector<int64_t> row_start_, row_col_;  // by rows
  std::vector<double> row_value_;
  std::vector<int64_t> col_start_, col_row_;  // the same entries by columns
  std::vector<double> col_value_;
};

}  // namespace solverd::ot::internal

#endif  // SOLVERD_KERNELS_OT_SPARSE_PLAN_MATRIX_H_
