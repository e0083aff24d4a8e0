// Round to nearest and HQQ on the CPU, and the grid layout helpers every grid
// method shares.
#include <algorithm>

#include "common/parallel_for.h"
#include "quant/quant_backend.h"

namespace solverd::quant::internal {

void ShapeGridLayer(int64_t rows, int64_t cols, const Options& options, QuantizedLayer* out) {
  out->bits = options.bits;
  out->group_size = GroupColumns(options, cols);
  const int64_t groups = GroupCount(cols, out->group_size);
  out->codes.assign(static_cast<size_t>(rows * cols), 0);
  out->scales.assign(static_cast<size_t>(rows * groups), 1.0f);
  out->zeros.assign(static_cast<size_t>(rows * groups), 0.0f);
  if (!options.k_quant) return;
  out->offsets.assign(static_cast<size_t>(rows * groups), 0.0f);
  out->super_scales.assign(static_cast<size_t>(rows * cols / kSuperBlock), 0.0f);
  out->super_mins.assign(static_cast<size_t>(rows * cols / kSuperBlock), 0.0f);
}

void DequantizeGrid(int64_t rows, int64_t cols, int threads, QuantizedLayer* out) {
  const int64_t group = out->group_size;
  const int64_t groups = GroupCount(cols, group);
  out->dequantized.resize(static_cast<size_t>(rows * cols));
  ParallelFor(rows, threads, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t at = r * cols + g * group;
        DequantizeGroup(&out->codes[at], static_cast<int>(std::min(group, cols - g * group)),
                        GridAt(*out, r * groups + g, out->bits), &out->dequantized[at]);
      }
    }
  });
}

namespace {

// Quantizes each (row, group) of the layer with `quantize` (a grid
// quantizer of quant_math.h / hqq_math.h), dequantizing each group while it
// is in cache rather than in a second pass over the layer.
template <typename GroupQuantizer>
void QuantizeGroups(const Layer& layer, const Options& options, GroupQuantizer quantize,
                    QuantizedLayer* out) {
  const int64_t cols = layer.cols;
  const int64_t group = GroupColumns(options, cols);
  const int64_t groups = GroupCount(cols, group);
  ShapeGridLayer(layer.rows, cols, options, out);
  out->dequantized.resize(static_cast<size_t>(layer.rows * cols));
  ParallelFor(layer.rows, options.threads, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t c0 = g * group;
        const int n = static_cast<int>(std::min(group, cols - c0));
        const int64_t at = r * cols + c0;
        const Grid grid = quantize(&layer.weights[at], n, &out->codes[at]);
        out->scales[r * groups + g] = grid.scale;
        out->zeros[r * groups + g] = grid.zero;
        DequantizeGroup(&out->codes[at], n, grid, &out->dequantized[at]);
      }
    }
  }, 1);
}

// Round to nearest on K-quant grids, one super-block at a time.
void QuantizeKSuperBlocks(const Layer& layer, const Options& options, QuantizedLayer* out) {
  const int64_t cols = layer.cols;
  ShapeGridLayer(layer.rows, cols, options, out);
  ParallelFor(layer.rows, options.threads, [&](int64_t begin, int64_t end) {
    Grid grids[kMaxKGroups];
    float d, dmin;
    for (int64_t r = begin; r < end; ++r) {
      for (int64_t c = 0; c < cols; c += kSuperBlock) {
        QuantizeKSuperBlock(&layer.weights[r * cols + c], options.bits, grids, &d, &dmin,
                            &out->codes[r * cols + c]);
        StoreKSuperBlock(r, cols, c, grids, d, dmin, out);
      }
    }
  }, 1);
  DequantizeGrid(layer.rows, cols, options.threads, out);
}

}  // namespace

Status RtnCpu(const Layer& layer, const Options& options, QuantizedLayer* out) {
  if (options.k_quant) {
    QuantizeKSuperBlocks(layer, options, out);
  } else {
    QuantizeGroups(layer, options, RtnGroupFor(options), out);
  }
  return Status::Ok();
}

Status HqqCpu(const Layer& layer, const Options& options, QuantizedLayer* out) {
  QuantizeGroups(layer, options, HqqGroupFor(options), out);
  return Status::Ok();
}

}  // namespace solverd::quant::internal
