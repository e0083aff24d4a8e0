// GPTQ on the CPU, and the host preparation both backends share. Rows are
// independent (the error feedback stays within a row), so the CPU splits
// rows across threads and rounds each row column by column with immediate
// feedback; the GPU's lazy block updates only reorder the same sums.
#include <algorithm>

#include "common/parallel_for.h"
#include "quant/gptq_hessian.h"
#include "quant/gptq_math.h"
#include "quant/quant_backend.h"

namespace solverd::quant::internal {
namespace {

// One row: `work` holds the row's weights in processing order.
void RoundRow(const GptqSetup& setup, const std::vector<float>& u, const Options& options,
              int64_t r, float* work, QuantizedLayer* out) {
  const int64_t cols = static_cast<int64_t>(setup.order.size());
  const int64_t group = out->group_size, groups = GroupCount(cols, group);
  for (int64_t j = 0; j < cols; ++j) {
    const int64_t col = setup.order[j];
    const int64_t cell = r * groups + col / group;
    if (!options.act_order && options.k_quant && j % kSuperBlock == 0) {
      Grid grids[kMaxKGroups];
      float d, dmin;
      ChooseKSuperBlock(work + j, options.bits, grids, &d, &dmin);
      StoreKSuperBlock(r, cols, j, grids, d, dmin, out);
    } else if (!options.act_order && !options.k_quant && j % group == 0) {
      const Grid chosen = ChooseGrid(work + j, static_cast<int>(std::min(group, cols - j)), 1,
                                     options.bits, options.symmetric, options.clip_search);
      out->scales[cell] = chosen.scale;
      out->zeros[cell] = chosen.zero;
    }
    const Grid grid = GridAt(*out, cell, options.bits);
    const int code = CodeOf(work[j], grid);
    out->codes[r * cols + col] = static_cast<uint8_t>(code);
    const float* u_row = &u[j * cols];
    const float err = FeedbackError(work[j], Dequantize(code, grid), u_row[j]);
    for (int64_t k = j + 1; k < cols; ++k) work[k] = Feedback(work[k], err, u_row[k]);
  }
}

}  // namespace

Status PrepareGptq(const Layer& layer, const Options& options, std::vector<double> hessian,
                   GptqSetup* setup, QuantizedLayer* out) {
  const int64_t rows = layer.rows, cols = layer.cols;
  DampHessian(options.damp, cols, &hessian, &setup->dead);
  setup->order.resize(static_cast<size_t>(cols));
  for (int64_t c = 0; c < cols; ++c) setup->order[c] = c;
  if (options.act_order) {
    setup->order = ActOrder(hessian, cols);
    hessian = PermuteSymmetric(hessian, cols, setup->order);
  }
  setup->h = std::move(hessian);
  Layer zeroed = layer;  // dead inputs: their weights do not matter
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (setup->dead[i % cols]) zeroed.weights[i] = 0;
  }
  if (options.act_order) {
    // Static groups: the grids of round to nearest, fixed up front.
    SOLVERD_RETURN_IF_ERROR(RtnCpu(zeroed, options, out));
  } else {
    ShapeGridLayer(rows, cols, options, out);
  }
  setup->work.resize(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < cols; ++j) {
      setup->work[r * cols + j] = zeroed.weights[r * cols + setup->order[j]];
    }
  }
  return Status::Ok();
}

Status GptqCpu(const Layer& layer, const Options& options, const CancelToken* cancel,
               QuantizedLayer* out, std::vector<double>* hessian) {
  const int64_t rows = layer.rows, cols = layer.cols;
  GptqSetup setup;
  std::vector<double> h = layer.hessian.empty()
                              ? Hessian(layer.inputs.data(), layer.tokens, cols, options.threads)
                              : ScaledHessian(layer.hessian, layer.hessian_tokens);
  if (hessian != nullptr) *hessian = h;
  SOLVERD_RETURN_IF_ERROR(PrepareGptq(layer, options, std::move(h), &setup, out));
  SOLVERD_RETURN_IF_ERROR(InverseCholeskyUpper(cols, options.threads, &setup.h));
  const std::vector<float> u(setup.h.begin(), setup.h.end());
  ParallelFor(rows, options.threads, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      if (!CheckCancel(cancel).ok()) return;
      RoundRow(setup, u, options, r, &setup.work[r * cols], out);
    }
  }, 1);
  SOLVERD_RETURN_IF_ERROR(CheckCancel(cancel));
  DequantizeGrid(rows, cols, options.threads, out);
  return Status::Ok();
}

}  // namespace solverd::quant::internal
