// Small layers quantized as one. rtn and hqq quantize every row on its own,
// so consecutive small layers with equal columns and widths are stacked row
// by row into one layer, quantized in one pass (one launch on CUDA, one pass
// spread over the threads on the CPU) and split again; each layer's codes,
// scales and zero points are those it would get alone. Models of many small
// layers (gnubg's nets, a small transformer's blocks) otherwise pay a
// launch, a synchronisation and a thread hand-off per layer. Internal to
// kernels/quant.
#ifndef SOLVERD_KERNELS_QUANT_LAYER_BATCH_H_
#define SOLVERD_KERNELS_QUANT_LAYER_BATCH_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/cancel_token.h"
#include "common/device.h"
#include "common/status.h"
#include "quant/quant.h"
#include "quant/formats/safetensors.h"

namespace solverd::quant::internal {

// Layers of at most this many weights are batched, up to this many in all.
inline constexpr int64_t kSmallLayerWeights = int64_t{1} << 18;
inline constexpr int64_t kMaxBatchWeights = int64_t{1} << 22;

// How many of selected[first], selected[first + 1], ... (quantized at
// bits[first], ...) go in one batch: 1 when selected[first] is not batched.
size_t BatchLength(const std::vector<TensorEntry>& selected, const std::vector<int>& bits,
                   size_t first, const Options& options);

// Memory a batch may hold for a model of `selected_weights` quantized
// weights (0 when `options` does not batch): its layers twice, stacked and
// split.
int64_t BatchMemoryBytes(int64_t selected_weights, const Options& options);

// Quantizes `layers` (equal columns; BatchLength's batch) as one stacked
// layer; out[i] is layers[i]'s part. `stacked` is scratch, kept by the
// caller so its buffers are reused.
Status QuantizeStacked(const Device& device, StreamHandle stream, const std::vector<Layer>& layers,
                       const Options& options, const CancelToken* cancel, Layer* stacked,
                       QuantizedLayer* stacked_out, std::vector<QuantizedLayer>* out);

}  // namespace solverd::quant::internal

#endif  // SOLVERD_KERNELS_QUANT_LAYER_BATCH_H_
