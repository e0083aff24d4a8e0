#include "quant/layer_batch.h"

#include <algorithm>

#include "quant/quant_backend.h"

namespace solverd::quant::internal {
namespace {

template <typename T>
void CopyRows(const std::vector<T>& from, int64_t first_row, int64_t rows, int64_t width,
              std::vector<T>* to) {
  to->assign(from.begin() + first_row * width, from.begin() + (first_row + rows) * width);
}

bool Batches(const Options& options) {
  return options.method == Method::kRtn || options.method == Method::kHqq;
}

}  // namespace

int64_t BatchMemoryBytes(int64_t selected_weights, const Options& options) {
  if (!Batches(options)) return 0;
  return 2 * MemoryBytes(1, std::min(selected_weights, kMaxBatchWeights), 0, options);
}

size_t BatchLength(const std::vector<TensorEntry>& selected, const std::vector<int>& bits,
                   size_t first, const Options& options) {
  if (!Batches(options)) return 1;
  const int64_t cols = selected[first].shape[1];
  int64_t weights = 0;
  size_t length = 0;
  for (size_t i = first; i < selected.size(); ++i) {
    const int64_t w = selected[i].elements();
    if (w > kSmallLayerWeights || selected[i].shape[1] != cols || bits[i] != bits[first] ||
        weights + w > kMaxBatchWeights) {
      break;
    }
    weights += w;
    ++length;
  }
  return length > 0 ? length : 1;
}

Status QuantizeStacked(const Device& device, StreamHandle stream, const std::vector<Layer>& layers,
                       const Options& options, const CancelToken* cancel, Layer* stacked,
                       QuantizedLayer* stacked_out, std::vector<QuantizedLayer>* out) {
  stacked->rows = 0;
  stacked->cols = layers[0].cols;
  stacked->tokens = 0;  // rtn and hqq use no calibration inputs
  stacked->inputs.clear();
  stacked->hessian.clear();
  stacked->hessian_tokens = 0;
  stacked->weights.clear();
  for (const Layer& l : layers) {
    stacked->rows += l.rows;
    stacked->weights.insert(stacked->weights.end(), l.weights.begin(), l.weights.end());
  }
  SOLVERD_RETURN_IF_ERROR(QuantizeLayer(device, stream, *stacked, options, cancel, stacked_out));
  const int64_t cols = stacked->cols;
  const int64_t groups = GroupCount(cols, stacked_out->group_size);
  out->resize(layers.size());
  int64_t row = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    QuantizedLayer& q = (*out)[i];
    q.Reset();
    q.bits = stacked_out->bits;
    q.group_size = stacked_out->group_size;
    const int64_t rows = layers[i].rows;
    CopyRows(stacked_out->codes, row, rows, cols, &q.codes);
    CopyRows(stacked_out->dequantized, row, rows, cols, &q.dequantized);
    CopyRows(stacked_out->scales, row, rows, groups, &q.scales);
    CopyRows(stacked_out->zeros, row, rows, groups, &q.zeros);
    if (options.k_quant) {
      CopyRows(stacked_out->offsets, row, rows, groups, &q.offsets);
      CopyRows(stacked_out->super_scales, row, rows, cols / kSuperBlock, &q.super_scales);
      CopyRows(stacked_out->super_mins, row, rows, cols / kSuperBlock, &q.super_mins);
    }
    row += rows;
  }
  return Status::Ok();
}

}  // namespace solverd::quant::internal
