// GibbsKernel's passes over K (gibbs_kernel.h) for the files that define
// its members: each thread's run of row blocks with its own column
// accumulators, and which storage the Newton system's products read.
// Member templates of GibbsKernel, which is not thread-safe; a pass uses
// up to the kernel's threads inside it.
#ifndef SOLVERD_KERNELS_OT_GIBBS_KERNEL_PASSES_H_
#define SOLVERD_KERNELS_OT_GIBBS_KERNEL_PASSES_H_

#include <algorithm>
#include <vector>

#include "common/parallel_for.h"
#include "ot/gibbs_kernel.h"
#include "ot/gibbs_rows.h"

namespace solverd::ot::internal {

// Single-precision entries below 2^-126 lose bits (error up to 2^-150):
// within 1e12 they move a plan of 2^28 entries by under 1e-20.
inline constexpr double kMaxSingleScaling = 1e12;

inline constexpr int64_t kCacheLineDoubles = 8;

template <typename Fn>
void GibbsKernel::WithStoredKernel(const Fn& fn) const {
  if (single_) {
    fn(kernel_single_.data());
  } else {
    fn(kernel_.data());
  }
}

template <typename BlockFn>
void GibbsKernel::ColumnPass(const BlockFn& block) {
  WithStoredKernel([&](const auto* kernel) { ColumnPassOver(kernel, block); });
}

template <typename Fn>
void GibbsKernel::WithProductKernel(const Fn& fn) const {
  const auto in_single_range = [](double scaling) {
    return scaling == 0 ||
           (scaling >= 1 / kMaxSingleScaling && scaling <= kMaxSingleScaling);
  };
  if (!single_ && !x0_.empty() && std::all_of(u_.begin(), u_.end(), in_single_range) &&
      std::all_of(v_.begin(), v_.end(), in_single_range) && MakeProductCopy()) {
    fn(product_copy_.data());
  } else {
    WithStoredKernel(fn);
  }
}

template <typename BlockFn>
void GibbsKernel::ProductPass(const BlockFn& block, int accumulators) {
  WithProductKernel([&](const auto* kernel) { ColumnPassOver(kernel, block, accumulators); });
}

template <typename T, typename BlockFn>
void GibbsKernel::ColumnPassOver(const T* kernel, const BlockFn& block, int accumulators) {
  const int64_t parts = Parts();  // each takes whole blocks of rows
  const int64_t chunk = ((n_ + parts - 1) / parts + kRowBlock - 1) / kRowBlock * kRowBlock;
  column_partials_.resize(parts);
  ParallelFor(
      parts, parts,
      [&](int64_t first, int64_t last) {
        for (int64_t part = first; part < last; ++part) {
          std::vector<double>& columns = column_partials_[part];
          // The padding keeps two parts' accumulators off a shared cache
          // line (each is allocated by the thread that first runs it).
          columns.assign(accumulators * m_ + kCacheLineDoubles, 0.0);
          const int64_t last = std::min(n_, (part + 1) * chunk);
          for (int64_t i = part * chunk; i < last; i += kRowBlock) {
            block(part, i, std::min(kRowBlock, last - i), &kernel[i * m_], columns.data());
          }
        }
      },
      /*min_items_per_thread=*/1);
  for (int64_t part = 1; part < parts; ++part) {
    for (int64_t j = 0; j < accumulators * m_; ++j) {
      column_partials_[0][j] += column_partials_[part][j];
    }
  }
}

template <typename T>
void GibbsKernel::RowDotsOver(const T* kernel, const double* v, std::vector<double>* r) const {
  r->resize(n_);
  ParallelFor((n_ + kRowBlock - 1) / kRowBlock, Parts(), [&](int64_t begin, int64_t end) {
    for (int64_t first = begin * kRowBlock; first < std::min(n_, end * kRowBlock);
         first += kRowBlock) {
      const int64_t count = std::min(kRowBlock, n_ - first);
      double sums[kRowBlock];
      BlockDots(&kernel[first * m_], count, m_, v, sums);
      for (int64_t k = 0; k < count; ++k) {
        (*r)[first + k] = u_[first + k] == 0 ? 0 : u_[first + k] * sums[k];
      }
    }
  }, 1);
}

template <typename T>
void GibbsKernel::PrefetchRows(const T* kernel, int64_t first, int64_t count) const {
  if (count <= 0) return;
  const char* begin = reinterpret_cast<const char*>(kernel + first * m_);
  const int64_t bytes = count * m_ * static_cast<int64_t>(sizeof(T));
  for (int64_t offset = 0; offset < bytes; offset += 64) __builtin_prefetch(begin + offset);
}

}  // namespace solverd::ot::internal

#endif  // SOLVERD_KERNELS_OT_GIBBS_KERNEL_PASSES_H_
