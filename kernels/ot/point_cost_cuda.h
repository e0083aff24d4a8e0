// The cost matrix from point clouds on the device, for the CUDA ot
// backends (single solves and batches). For .cu files only. Internal.
// Thread-safe: each call works on its own buffers and stream, with its
// thread's cuBLAS handle (cuBLAS is loaded once, under a function-local
// static).
#ifndef SOLVERD_KERNELS_OT_POINT_COST_CUDA_H_
#define SOLVERD_KERNELS_OT_POINT_COST_CUDA_H_

#include <cuda_runtime.h>

#include "common/status.h"
#include "ot/ot.h"

namespace solverd::ot::internal {

// Squared distances (p = 2) in at least this many dimensions come from a
// GEMM (see CostFromPointsCuda). Below it the per-entry kernel reads each
// point's few coordinates from cache and writes C once, where the GEMM's
// route writes C and then reads and writes it again to add the norms. An
// estimate from that traffic, not yet timed on a GPU: `ot_gpu_bench
// --point-cost` times both routes at several dimensions.
inline constexpr int64_t kGemmMinDim = 16;

// How CostFromPointsCuda computes the cost.
enum class PointCostRoute { kAuto, kPerEntry, kGemm };

// cost (n x m, row-major, on the device) = ||x_i - y_j||_p^p for the
// points of `problem`, ordered on `stream`. For p = 2 and dim >=
// kGemmMinDim (or route kGemm) by ||x_i||^2 + ||y_j||^2 - 2 x_i . y_j,
// the products by one cuBLAS GEMM, after both clouds are shifted by their
// common mean (distances do not change; the norms, and so the rounding of
// the difference, get as small as they can), and clamped at 0; otherwise,
// or where cuBLAS does not load, entry by entry as the CPU backend
// computes it. FAILED_PRECONDITION for route kGemm without cuBLAS or p = 2.
Status CostFromPointsCuda(const Problem& problem, cudaStream_t stream, double* cost,
                          PointCostRoute route = PointCostRoute::kAuto);

}  // namespace solverd::ot::internal

#endif  // SOLVERD_KERNELS_OT_POINT_COST_CUDA_H_
