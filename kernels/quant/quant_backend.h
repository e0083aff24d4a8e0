// The per-method entry points behind QuantizeLayer(), one per backend, and
// the layout helpers they share. Internal to kernels/quant.
// Stateless functions; a call owns the buffers it is given, so calls
// on different threads never share anything.
#ifndef SOLVERD_KERNELS_QUANT_QUANT_BACKEND_H_
#define SOLVERD_KERNELS_QUANT_QUANT_BACKEND_H_

#include <cstdint>
#include <vector>

#include "common/cancel_token.h"
#include "common/device.h"
#include "common/status.h"
#include "quant/hqq_math.h"
#include "quant/kquant_math.h"
#include "quant/quant.h"
#include "quant/quant_math.h"

namespace solverd::quant::internal {

// Columns per scale group: group_size, or the whole row for 0 or a group
// wider than the row.
inline int64_t GroupColumns(const Options& options, int64_t cols) {
  if (options.k_quant) return KGroupSize(options.bits);
  return options.group_size <= 0 || options.group_size >= cols ? cols : options.group_size;
}
inline int64_t GroupCount(int64_t cols, int64_t group) { return (cols + group - 1) / group; }

inline RtnGroup RtnGroupFor(const Options& options) {
  return RtnGroup{options.bits, options.symmetric, options.clip_search};
}
inline HqqGroup HqqGroupFor(const Options& options) {
  return HqqGroup{options.bits, static_cast<int>(options.hqq_iterations)};
}

// Sizes the grid fields of `out` for a rows x cols layer (the K-quant
// ones too with options.k_quant).
void ShapeGridLayer(int64_t rows, int64_t cols, const Options& options, QuantizedLayer* out);

inline Grid GridAt(const QuantizedLayer& q, int64_t index, int bits) {
  Grid g;
  g.scale = q.scales[index];
  g.zero = q.zeros[index];
  if (!q.offsets.empty()) g.offset = q.offsets[index];
  g.maxq = (1 << bits) - 1;
  return g;
}

// q - w for rows [first, first + count) of the layer into e (count x cols),
// from q's codes on q's grids.
inline void RoundingErrors(const Layer& layer, const QuantizedLayer& q, int64_t first,
                           int64_t count, double* e) {
  const int64_t cols = layer.cols, groups = GroupCount(cols, q.group_size);
  for (int64_t r = first; r < first + count; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const Grid g = GridAt(q, r * groups + c / q.group_size, q.bits);
      const int64_t at = r * cols + c;
      e[at - first * cols] = static_cast<double>(Dequantize(q.codes[at], g)) - layer.weights[at];
    }
  }
}

// Stores the grids of the super-block starting at column `col` of row `r`
// (ChooseKSuperBlock's outputs) in `out`.
inline void StoreKSuperBlock(int64_t r, int64_t cols, int64_t col, const Grid* grids, float d,
                             float dmin, QuantizedLayer* out) {
  const int64_t groups = cols / out->group_size, supers = cols / kSuperBlock;
  const int64_t first = r * groups + col / out->group_size;
  for (int g = 0; g < KGroups(out->bits); ++g) {
    out->scales[first + g] = grids[g].scale;
    out->zeros[first + g] = grids[g].zero;
    out->offsets[first + g] = grids[g].offset;
  }
  out->super_scales[r * supers + col / kSuperBlock] = d;
  out->super_mins[r * supers + col / kSuperBlock] = dmin;
}

// out[0..n) = the values of one group's codes on grid `g`.
inline void DequantizeGroup(const uint8_t* codes, int n, const Grid& g, float* out) {
  for (int i = 0; i < n; ++i) out[i] = Dequantize(codes[i], g);
}

// Fills out->dequantized from codes, scales and zeros, rows split over up to
// `threads` threads.
void DequantizeGrid(int64_t rows, int64_t cols, int threads, QuantizedLayer* out);

// GPTQ's host preparation, shared by both backends: from the raw Hessian,
// damps it, marks dead columns, applies act-order, shapes `out` (with the
// static grids under act-order) and lays the weights out in processing
// order.
struct GptqSetup {
  std::vector<double> h;        // damped, permuted H (cols x cols)
  std::vector<int64_t> order;   // processing position -> column
  std::vector<uint8_t> dead;    // per column
  std::vector<float> work;      // rows x cols, in processing order
};
Status PrepareGptq(const Layer& layer, const Options& options, std::vector<double> hessian,
                   GptqSetup* setup, QuantizedLayer* out);

Status RtnCpu(const Layer& layer, const Options& options, QuantizedLayer* out);
Status HqqCpu(const Layer& layer, const Options& options, QuantizedLayer* out);
// `hessian`, when given, receives the H GPTQ rounds with, before damping
// (cols x cols, the columns in their own order), here and in GptqCuda.
Status GptqCpu(const Layer& layer, const Options& options, const CancelToken* cancel,
               QuantizedLayer* out, std::vector<double>* hessian = nullptr);
Status BlockwiseCpu(const Layer& layer, const Options& options, QuantizedLayer* out);
// GPTQ on `device`'s backend (GptqCpu or GptqCuda).
Status Gptq(const Device& device, StreamHandle stream, const Layer& layer, const Options& options,
            const CancelToken* cancel, QuantizedLayer* out, std::vector<double>* hessian);
// The dmmv method on either device (the dmmv family picks the backend).
Status DmmvRounding(const Device& device, StreamHandle stream, const Layer& layer,
                    const Options& options, const CancelToken* cancel, QuantizedLayer* out);

#ifdef SOLVERD_HAVE_CUDA
// scale * X^T X of `tokens` rows of `cols` floats in device memory, summed
// in the order of SumOfOuterProducts() (gptq_hessian.h), so both give the
// same H; waits for it on `stream`.
Status DeviceSumOfOuterProducts(const float* device_inputs, int64_t tokens, int64_t cols,
                                double scale, StreamHandle stream, std::vector<double>* h);
// sum_k x_k y_k^T of `tokens` rows of `cols` floats each in device memory,
// summed as SumOfCrossProducts() (gptq_hessian.h) sums; waits on `stream`.
Status DeviceSumOfCrossProducts(const float* device_x, const float* device_y, int64_t tokens,
                                int64_t cols, StreamHandle stream, std::vector<double>* out);
Status RtnCuda(const Device& device, StreamHandle stream, const Layer& layer,
               const Options& options, QuantizedLayer* out);
Status HqqCuda(const Device& device, StreamHandle stream, const Layer& layer,
               const Options& options, QuantizedLayer* out);
Status GptqCuda(const Device& device, StreamHandle stream, const Layer& layer,
                const Options& options, const CancelToken* cancel, QuantizedLayer* out,
                std::vector<double>* hessian = nullptr);
Status BlockwiseCuda(const Device& device, StreamHandle stream, const Layer& layer,
                     const Options& options, QuantizedLayer* out);
#endif

}  // namespace solverd::quant::internal

#endif  // SOLVERD_KERNELS_QUANT_QUANT_BACKEND_H_
