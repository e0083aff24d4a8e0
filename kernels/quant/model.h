// Quantization of a whole model file: every selected tensor of a
// safetensors file (2-D float weights whose names match an include glob and
// no exclude glob) is quantized layer by layer; everything else is copied
// through bit for bit, metadata included. The result is a safetensors file
// that describes itself: for a tensor "L.weight" (layer L) quantized on a
// grid it holds
//   L.qweight  U8  [rows, ceil(cols * bits / 8)]  codes, packed (packing.h)
//   L.scales   F16 [rows, groups]   L.zeros  F16 [rows, groups]
// with w = scale * (code - zero) per group of group_size columns; block-wise
// methods store L.qweight, L.codebook F32 and L.absmax F32 [blocks] (or, with
// double quant, L.absmax_codes U8, L.absmax_scales F32, L.absmax_offset F32;
// see blockwise.h), with w = absmax[i / block] * codebook[code], i the
// row-major index. The metadata key "solverd.layer.L" holds the layer's
// description as JSON: source tensor, source dtype, shape, method, bits,
// group_size, symmetric, double_quant. DequantizeModel() inverts it.
//
// Calibration for layer L is "L.inputs" [tokens, cols] and/or "L.hessian"
// with "L.tokens" in a second safetensors file, possibly shared between
// layers that read the same input (calibration.h). PlanModel() checks both
// files and every selected layer's calibration shapes before any work; a
// Hessian's values are checked as its layer is loaded. Thread-compatible.
#ifndef SOLVERD_KERNELS_QUANT_MODEL_H_
#define SOLVERD_KERNELS_QUANT_MODEL_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/cancel_token.h"
#include "common/device.h"
#include "common/progress.h"
#include "common/status.h"
#include "quant/bit_allocation.h"
#include "quant/quant.h"
#include "quant/formats/checkpoint.h"
#include "quant/formats/safetensors.h"

namespace solverd::quant {
namespace internal {
class LlamaGgufLayout;
}  // namespace internal

// The layout of the output file; see model_writer.h for the exports.
enum class ExportFormat { kSolverd, kGptq, kGguf };
const char* ExportFormatName(ExportFormat format);  // "solverd", "gptq", "gguf"

// gguf's tensor types: Q4_0 or Q8_0 blocks by the layers' bits; every
// 2-D float tensor in F16 with nothing quantized (1-D ones in F32), as
// llama.cpp's converter writes an unquantized model; or llama.cpp's
// K-quants, needing layer.k_quant with layer.bits 4 (Q4_K, and the base
// of Q4_K_M), 5 (Q5_K) or 6 (Q6_K). Q4_K_M is llama.cpp's mix of that
// name: Q6_K for the output head and for attn_v and ffn_down in the first
// and last eighth of the blocks and every third block between, Q4_K for
// the rest. With bit allocation, K-quant types are what
// allocation_bits' 4, 5 and 6 mean.
enum class GgufType { kFromBits, kF16, kQ4_K, kQ5_K, kQ6_K, kQ4_K_M };
const char* GgufTypeName(GgufType type);  // "Q4_K_M", ...

// The bits a K-quant type quantizes its layers at (Q4_K_M: most of them);
// 0 for the others.
int GgufTypeBits(GgufType type);

// What bit allocation sums over layers: each layer's squared relative
// output error ||(W - Q) X^T||_F^2 / ||W X^T||_F^2, which does not depend
// on the scale of a layer's inputs and outputs, or the absolute
// ||(W - Q) X^T||_F^2, which spends bits where outputs are largest.
enum class AllocationError { kRelative, kAbsolute };

struct ModelOptions {
  Options layer;
  ExportFormat format = ExportFormat::kSolverd;
  // Globs (* and ?); empty: every tensor. A tensor an include names
  // exactly (no glob characters needed) is quantized whatever `exclude` says.
  std::vector<std::string> include;
  std::vector<std::string> exclude;  // globs; see DefaultExcludes()
  // Bit allocation (grid methods): with a budget, each layer's bits are
  // chosen from `allocation_bits` (layer.bits is not used) to make the sum
  // over layers of `allocation_error` least (X the calibration inputs, or
  // the Gaussian stand-in) within the budget: `target_bits` stored bits per
  // quantized weight (scales included, as ModelResult::average_bits), or
  // `target_bytes` of output tensor data (copied tensors included). Each
  // layer is quantized at every candidate width to measure its error.
  double target_bits = 0;    // 0: no allocation by bits
  int64_t target_bytes = 0;  // 0: no allocation by bytes
  std::vector<int> allocation_bits = {2, 3, 4, 8};
  AllocationError allocation_error = AllocationError::kRelative;
  // A checkpoint's gptq folder splits its weights into shards of at most
  // this many bytes of tensor data (a larger tensor alone in its shard).
  int64_t max_shard_bytes = int64_t{4} << 30;
  GgufType gguf_type = GgufType::kFromBits;
  // Non-empty: the output file is written here as it is produced (tensor
  // data waiting for the header in an unnamed file in the same folder), and
  // ModelResult::file stays empty. Empty: the file is built in memory.
  std::string output_path;
  // The calibration comes later (sequential_calibration.h): none is asked for.
  bool calibration_from_tokens = false;
};

// Whether `options` writes an unquantized F16 gguf file (no layer selected).
inline bool WritesGgufF16(const ModelOptions& options) {
  return options.format == ExportFormat::kGguf && options.gguf_type == GgufType::kF16;
}

// Whether `options` writes llama.cpp K-quant blocks.
inline bool WritesKQuants(const ModelOptions& options) {
  return options.format == ExportFormat::kGguf && GgufTypeBits(options.gguf_type) != 0;
}

// Whether `options` asks for bit allocation (a target is set).
inline bool AllocatesBits(const ModelOptions& options) {
  return options.target_bits != 0 || options.target_bytes != 0;
}

// Embeddings, norms and the output head (lm_head), left alone unless the
// caller says otherwise; as llama.cpp and GPTQ loaders expect them.
std::vector<std::string> DefaultExcludes();

// `*` matches any run of characters, `?` any one; the whole name must match.
bool GlobMatch(std::string_view pattern, std::string_view name);

// The layer name of a tensor: its name without a trailing ".weight".
std::string LayerName(std::string_view tensor_name);

// A model to quantize: its weights (one file, or a checkpoint's shards
// merged) and, from a checkpoint, its config.json and tokenizer.json.
struct ModelInput {
  SafetensorsFile weights;
  ModelConfig config;               // model_type "" for a lone file
  std::string_view config_json;     // as given; empty for a lone file
  std::string_view tokenizer_json;  // empty without one
  // Tokenizer and generation files an output folder carries through.
  std::vector<std::pair<std::string, std::string_view>> passthrough;
  // Called with a tensor's bytes once they are read or copied (and read
  // again only if a layer is quantized again, as bit allocation does): a
  // mapped source gives its pages back here, so a checkpoint's pages do
  // not pile up in memory. May be empty.
  std::function<void(std::string_view)> release_source;
};

struct LayerSummary {
  std::string name;  // the source tensor
  int64_t rows = 0, cols = 0, tokens = 0;
  int bits = 0;
  int64_t group_size = 0;
  LayerReport report;  // report.seconds: this layer's share (by rows) of its batch's
  int batch_layers = 1;  // layers quantized together with it (layer_batch.h)
  int64_t bytes_before = 0, bytes_after = 0;
  // Allocation: the widths measured (error: as ModelOptions::allocation_error).
  std::vector<BitsCandidate> candidates;
};

// A layer the sequential pass has quantized already (sequential_calibration.h),
// without its dequantized weights: QuantizeModel writes it as it is.
struct DoneLayer {
  QuantizedLayer layer;
  LayerSummary summary;
};

// Both files parsed, and the tensors to quantize. Refers to the bytes it
// was planned from, which must outlive it.
struct ModelPlan {
  SafetensorsFile model;
  ModelConfig config;
  std::string_view config_json;
  std::string_view tokenizer_json;
  std::vector<std::pair<std::string, std::string_view>> passthrough;
  std::function<void(std::string_view)> release_source;
  // gguf of a Llama-family checkpoint: llama.cpp's names, order, metadata.
  std::shared_ptr<const internal::LlamaGgufLayout> gguf_layout;
  SafetensorsFile calibration;         // empty without calibration data
  std::vector<TensorEntry> selected;   // in file order
  std::vector<int> bits;               // of each selected layer (before any allocation)
  int64_t largest_layer_bytes = 0;     // MemoryBytes of the largest layer or batch
  int64_t selected_weights = 0;
  int64_t layer_budget_bytes = 0;      // allocation: the selected layers' budget; 0: none
  std::vector<std::string> notes;      // what the user should know of the output's layout
  std::map<std::string, DoneLayer> done_layers;  // by tensor name
};

// INVALID_ARGUMENT naming the file ("model:" / "calibration:") and tensor.
Status PlanModel(std::string_view model_bytes, std::string_view calibration_bytes,
                 const ModelOptions& options, ModelPlan* plan);
// The same for a model already parsed: a file, or a sharded checkpoint's
// files merged (checkpoint.h). The gguf format writes a Llama-family
// checkpoint in llama.cpp's layout (INVALID_ARGUMENT when it cannot: no
// tokenizer.json, a tensor llama.cpp has no name for), other models with
// their own tensor names.
Status PlanModel(ModelInput model, std::string_view calibration_bytes,
                 const ModelOptions& options, ModelPlan* plan);

struct ModelResult {
  std::string file;  // the output file, unless written to options.output_path
  int64_t file_bytes = 0;
  std::vector<LayerSummary> layers;
  int64_t bytes_before = 0, bytes_after = 0;  // whole files' data
  double average_bits = 0;     // stored bits per quantized weight, scales included
  int64_t copied_tensors = 0;
  double seconds = 0;
  int64_t layer_budget_bytes = 0;  // allocation: the quantized layers' budget; 0: none
  std::vector<std::string> notes;  // the plan's
  // A checkpoint's gptq output is a folder packed in `file` as a tar
  // (gptq_checkpoint.h): its members, in order; empty for one file.
  std::vector<std::string> output_files;
};

// Quantizes the plan's layers on `device`, reporting progress per layer
// (and per candidate width while allocating bits).
// A cancel between layers returns CANCELLED with the layers done so far in
// `result` (and no file; a partial output_path file is removed).
Status QuantizeModel(const Device& device, StreamHandle stream, const ModelPlan& plan,
                     const ModelOptions& options, ProgressSink* sink, const CancelToken* cancel,
                     ModelResult* result);

namespace internal {
// Measures quantized layer `q` of tensor `t` into `summary`; `seconds` is
// the time it took.
void Summarize(const TensorEntry& t, const Layer& layer, const QuantizedLayer& q, int threads,
               double seconds, LayerSummary* summary);
}  // namespace internal

// A quantized file back to float: each quantized layer becomes its source
// tensor in F32; every other tensor is copied as is.
Status DequantizeModel(std::string_view quantized, std::string* out);

}  // namespace solverd::quant

#endif  // SOLVERD_KERNELS_QUANT_MODEL_H_
