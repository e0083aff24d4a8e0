#include "dmmv/dmmv.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>

#include "dmmv/dmmv_backend.h"
#include "dmmv/dmmv_sparse.h"

namespace solverd::dmmv {
namespace {

std::string At(const std::string& field, size_t i) { return field + "[" + std::to_string(i) + "]"; }

// field() names the levels: formed only for an error, since this runs for
// every variable of every instance (quantization's searches: 10-25 ms of
// names per solve on a 1024-column layer).
template <typename FieldName>
Status CheckLevels(const Levels& levels, const FieldName& field) {
  if (levels.values.empty()) {
    if (levels.count < 1) return InvalidArgument(field() + ".count: must be at least 1");
    if (!std::isfinite(levels.lo) || !(levels.step > 0) || !std::isfinite(levels.step) ||
        !std::isfinite(levels.lo + levels.step * static_cast<double>(levels.count - 1))) {
      return InvalidArgument(field() + ": lo must be finite and step positive and finite");
    }
    return Status::Ok();
  }
  for (size_t i = 0; i < levels.values.size(); ++i) {
    if (!std::isfinite(levels.values[i])) {
      return InvalidArgument(At(field() + ".values", i) + ": not finite");
    }
    if (i > 0 && !(levels.values[i] > levels.values[i - 1])) {
      return InvalidArgument(At(field() + ".values", i) + ": levels must be strictly increasing");
    }
  }
  return Status::Ok();
}

Status CheckInstance(const Problem& p, const Instance& inst, const std::string& field) {
  const auto n = static_cast<size_t>(p.rows), m = static_cast<size_t>(p.cols);
  if (inst.b.size() != n) {
    return InvalidArgument(field + ".b: has " + std::to_string(inst.b.size()) +
                           " entries, X has " + std::to_string(n) + " rows");
  }
  for (size_t k = 0; k < n; ++k) {
    if (!std::isfinite(inst.b[k])) return InvalidArgument(At(field + ".b", k) + ": not finite");
  }
  if (!inst.weights.empty() && inst.weights.size() != n) {
    return InvalidArgument(field + ".weights: needs one per row of X (" + std::to_string(n) + ")");
  }
  for (size_t k = 0; k < inst.weights.size(); ++k) {
    if (!(inst.weights[k] > 0) || !std::isfinite(inst.weights[k])) {
      return InvalidArgument(At(field + ".weights", k) + ": must be positive and finite");
    }
  }
  if (inst.levels.size() != 1 && inst.levels.size() != m) {
    return InvalidArgument(field + ".levels: give one level set for all variables or one per "
                           "variable (" + std::to_string(m) + ")");
  }
  for (size_t j = 0; j < inst.levels.size(); ++j) {
    const auto name = [&] { return At(field + ".levels", j); };
    if (Status s = CheckLevels(inst.levels[j], name); !s.ok()) return s;
  }
  const bool shared = inst.levels.size() == 1;
  if (!inst.start_levels.empty()) {
    if (inst.start_levels.size() != m) return InvalidArgument(field + ".start_levels: needs M entries");
    for (size_t j = 0; j < m; ++j) {
      const int64_t q = inst.start_levels[j];
      if (q < 0 || q >= inst.levels[shared ? 0 : j].size()) {
        return InvalidArgument(At(field + ".start_levels", j) + ": not a level index");
      }
    }
  }
  if (!inst.start_values.empty()) {
    if (inst.start_values.size() != m) return InvalidArgument(field + ".start_values: needs M entries");
    for (size_t j = 0; j < m; ++j) {
      if (!std::isfinite(inst.start_values[j])) {
        return InvalidArgument(At(field + ".start_values", j) + ": not finite");
      }
    }
  }
  return Status::Ok();
}

Status CheckDense(const Problem& p) {
  if (static_cast<int64_t>(p.x.size()) != p.rows * p.cols) {
    return InvalidArgument("x: has " + std::to_string(p.x.size()) + " entries, shape says " +
                           std::to_string(p.rows * p.cols));
  }
  for (size_t i = 0; i < p.x.size(); ++i) {
    if (!std::isfinite(p.x[i])) return InvalidArgument(At("x", i) + ": not finite");
  }
  return Status::Ok();
}

Status CheckCsr(const Problem& p) {
  const CsrMatrix& a = p.x_csr;
  if (!p.x.empty()) return InvalidArgument("x: set a dense X or a sparse one, not both");
  if (static_cast<int64_t>(a.row_offsets.size()) != p.rows + 1) {
    return InvalidArgument("x_csr.row_offsets: needs rows + 1 (" + std::to_string(p.rows + 1) +
                           ") entries");
  }
  const auto nnz = static_cast<int64_t>(a.values.size());
  if (a.columns.size() != a.values.size()) {
    return InvalidArgument("x_csr.columns: needs one per value (" + std::to_string(nnz) + ")");
  }
  if (a.row_offsets.front() != 0 || a.row_offsets.back() != nnz) {
    return InvalidArgument("x_csr.row_offsets: must start at 0 and end at the number of values");
  }
  for (int64_t k = 0; k < p.rows; ++k) {
    const int64_t begin = a.row_offsets[k], end = a.row_offsets[k + 1];
    if (end < begin) return InvalidArgument(At("x_csr.row_offsets", k + 1) + ": decreasing");
    for (int64_t e = begin; e < end; ++e) {
      if (a.columns[e] < 0 || a.columns[e] >= p.cols) {
        return InvalidArgument(At("x_csr.columns", e) + ": not a column of X");
      }
      if (e > begin && a.columns[e] <= a.columns[e - 1]) {
        return InvalidArgument(At("x_csr.columns", e) + ": columns of a row must be strictly "
                               "increasing");
      }
      if (!std::isfinite(a.values[e])) return InvalidArgument(At("x_csr.values", e) + ": not finite");
    }
  }
  return Status::Ok();
}

}  // namespace

int64_t Levels::Nearest(double x) const {
  if (values.empty()) {
    const double q = std::floor((x - lo) / step + 0.5 - 1e-12);
    return static_cast<int64_t>(std::min<double>(std::max<double>(q, 0), count - 1));
  }
  int64_t lo_i = 0, hi_i = static_cast<int64_t>(values.size()) - 1;
  while (hi_i - lo_i > 1) {
    const int64_t mid = (lo_i + hi_i) / 2;
    (values[mid] <= x ? lo_i : hi_i) = mid;
  }
  return std::fabs(values[hi_i] - x) < std::fabs(x - values[lo_i]) ? hi_i : lo_i;
}

Status ValidateProblem(const Problem& p) {
  if (p.rows < 1 || p.cols < 1) return InvalidArgument("x: needs at least one row and one column");
  if (p.cols > (int64_t{1} << 31) - 1) return InvalidArgument("x: too many columns");
  if (Status s = p.sparse() ? CheckCsr(p) : CheckDense(p); !s.ok()) return s;
  if (p.instances.empty()) return InvalidArgument("instances: needs at least one");
  for (size_t i = 0; i < p.instances.size(); ++i) {
    if (Status s = CheckInstance(p, p.instances[i], At("instances", i)); !s.ok()) return s;
  }
  return Status::Ok();
}

Status Solve(const Device& device, StreamHandle stream, const Problem& problem,
             const Options& options, ProgressSink* sink, const CancelToken* cancel,
             Result* result) {
  if (Status s = ValidateProblem(problem); !s.ok()) return s;
  if (options.max_outer_iterations < 0) return InvalidArgument("max_outer_iterations: negative");
  if (options.stall_rounds < 0) return InvalidArgument("stall_rounds: negative");
  if (!(options.violation_cap >= 0 && std::isfinite(options.violation_cap))) {
    return InvalidArgument("violation_cap: must be finite and non-negative");
  }
  if (options.pair_candidates < 0) return InvalidArgument("pair_candidates: negative");
  std::unique_ptr<internal::DmmvBackend> backend;
  std::optional<internal::CscMatrix> columns;
  if (problem.sparse()) columns = internal::ToColumns(problem);
  if (!device.is_cuda()) {
    backend = columns ? internal::MakeSparseCpuBackend(problem, *columns, options.threads)
                      : internal::MakeCpuBackend(problem, options.threads);
  } else {
#ifdef SOLVERD_HAVE_CUDA
    Status s = columns
                   ? internal::MakeSparseCudaBackend(device, stream, problem, *columns, &backend)
                   : internal::MakeCudaBackend(device, stream, problem, &backend);
    if (!s.ok()) return s;
#else
    (void)stream;
    return FailedPrecondition("this build has no CUDA backend");
#endif
  }
  return internal::RunSearch(*backend, problem, columns ? &*columns : nullptr, options, sink,
                             cancel, result);
}

int64_t MemoryBytes(const Problem& problem) {
  const auto instances = static_cast<int64_t>(problem.instances.size());
  const auto d = static_cast<int64_t>(sizeof(double));
  // Sparse: X twice (by rows and by columns), each entry a value and an index.
  const int64_t x = problem.sparse()
                        ? 2 * (d + 4) * static_cast<int64_t>(problem.x_csr.values.size()) +
                              8 * (problem.rows + problem.cols + 2)
                        : d * problem.rows * problem.cols;
  // Dense on the CPU: the Gram matrices, when used, are no larger than X,
  // and each instance's gradient has M entries.
  const int64_t gram = problem.sparse() ? 0 : x + d * instances * problem.cols;
  return x + gram + d * 3 * instances * problem.rows;
}

}  // namespace solverd::dmmv
