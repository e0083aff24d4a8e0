// The layouts a quantized model can be written in, behind one interface:
//  - kSolverd: solverd's self-describing safetensors layout (model.h).
//  - kGptq: AutoGPTQ's safetensors layout ("GPTQ v1"), for a Linear layer
//    L.weight [N, K] (out, in) at b in {2, 3, 4, 8} bits:
//      L.qweight I32 [K b / 32, N]  column j: code[j][i] at bits [b i, b (i + 1))
//      L.qzeros  I32 [G, N b / 32]  row g: zero[j][g] - 1 at bits [b j, b (j + 1))
//      L.scales  F16 [G, N]         L.g_idx I32 [K] = column / group_size
//    where a run of words is read as one little-endian bit stream (3-bit
//    codes straddle words; at 2, 4 and 8 bits word w holds codes
//    [w 32 / b, (w + 1) 32 / b)),
//    with w = scale * (code - zero) and the metadata key "quantize_config"
//    holding AutoGPTQ's quantize_config.json. (v1 stores zero - 1, so a zero
//    point of 0 cannot be written; symmetric grids never have one.)
//  - kGguf: a GGUF v3 file (llama.cpp's format) whose quantized layers are
//    Q4_0 (4 bits) or Q8_0 (8 bits) tensors, needing symmetric grids with
//    group_size 32, or on K-quant grids Q4_K, Q5_K, Q6_K tensors (blocks:
//    gguf_blocks.h), under llama.cpp's names for a Llama-family checkpoint
//    (gguf_llama.h) and their own otherwise. Other tensors keep their dtype.
// Internal to kernels/quant.
// A writer is used by one thread at a time; the free functions are
// stateless and safe from any thread.
#ifndef SOLVERD_KERNELS_QUANT_FORMATS_MODEL_WRITER_H_
#define SOLVERD_KERNELS_QUANT_FORMATS_MODEL_WRITER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "quant/model.h"
#include "quant/formats/byte_sink.h"
#include "quant/formats/gguf_llama.h"
#include "quant/formats/model_format.h"
#include "quant/formats/safetensors.h"

namespace solverd::quant::internal {

// Tensors wait for the header in memory, or after SpillTo() in a file on
// disk; Finish() writes the header, then moves them to the output.
class ModelWriter {
 public:
  virtual ~ModelWriter() = default;
  // REQUIRES: called before anything is added.
  virtual Status SpillTo(const std::string& dir) = 0;
  virtual void AddMetadata(const std::string& key, const std::string& value) = 0;
  virtual void AddCopied(const TensorEntry& tensor, std::string_view bytes) = 0;
  // Adds a quantized layer; `bytes` is what its tensors take.
  virtual Status AddLayer(const LayerDescription& d, const QuantizedLayer& q,
                          int64_t* bytes) = 0;
  virtual Status Finish(ByteSink* out) = 0;
  // A folder packed in one tar: its members' names in order (else empty).
  virtual std::vector<std::string> members() const { return {}; }
};

// The writer of `options.format`; `plan` gives gguf its llama.cpp layout,
// if it has one, and gptq the checkpoint folder's config and tokenizer.
std::unique_ptr<ModelWriter> NewModelWriter(const ModelOptions& options, const ModelPlan& plan);

// Plan-time checks that `format` can hold the layer `t` quantized with
// `options` (INVALID_ARGUMENT starting "export: "), and the tensor names
// the layer will take.
Status CheckExportLayer(ExportFormat format, const TensorEntry& t, const ModelOptions& options);
Status CheckExportCopy(ExportFormat format, const TensorEntry& t);
std::vector<std::string> ExportTensorNames(ExportFormat format, const TensorEntry& t,
                                           const Options& options);

// The bytes AddLayer() stores for a rows x cols grid layer quantized with
// `layer` (solverd and gguf layouts: the ones bit allocation can write).
int64_t ExportLayerBytes(ExportFormat format, int64_t rows, int64_t cols, const Options& layer);

// The writers of each format (export_gptq.cc, export_gguf.cc).
// From a checkpoint (config_json non-empty) the writer packs the GPTQ
// folder (gptq_checkpoint.h), else writes one safetensors file.
std::unique_ptr<ModelWriter> NewGptqWriter(const ModelOptions& options, const ModelPlan& plan);
// `f16`: float tensors as F16 (2-D) and F32 (1-D), as GgufType::kF16.
std::unique_ptr<ModelWriter> NewGgufWriter(std::shared_ptr<const LlamaGgufLayout> layout,
                                           bool f16);
Status CheckGptqLayer(const TensorEntry& t, const ModelOptions& options);
Status CheckGgufLayer(const TensorEntry& t, const ModelOptions& options);
Status CheckGgufCopy(const TensorEntry& t);

}  // namespace solverd::quant::internal

#endif  // SOLVERD_KERNELS_QUANT_FORMATS_MODEL_WRITER_H_
