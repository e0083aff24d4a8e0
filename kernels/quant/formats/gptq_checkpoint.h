// A GPTQ checkpoint folder, as transformers (optimum), AutoGPTQ and vLLM
// load one, packed in one POSIX tar (ustar; members over 8 GiB take GNU's
// base-256 size):
//   config.json             the source's, with "quantization_config"
//                           (quant_method gptq, bits, group_size, desc_act,
//                           sym, checkpoint_format)
//   quantize_config.json    AutoGPTQ's
//   model.safetensors       or, over the shard size, model-0000k-of-0000n
//                           .safetensors and model.safetensors.index.json
//   the tokenizer and generation files passed through as they are.
// Internal to kernels/quant. Pure functions.
#ifndef SOLVERD_KERNELS_QUANT_FORMATS_GPTQ_CHECKPOINT_H_
#define SOLVERD_KERNELS_QUANT_FORMATS_GPTQ_CHECKPOINT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "quant/quant.h"
#include "quant/formats/byte_sink.h"
#include "quant/formats/safetensors.h"

namespace solverd::quant::internal {

// AutoGPTQ's quantize_config.json for layers quantized with `options`.
std::string GptqQuantizeConfig(const Options& options);

// Appends a regular file member to `tar`; FinishTar() ends the archive.
Status AppendTarMember(std::string_view name, std::string_view bytes, ByteSink* tar);
Status FinishTar(ByteSink* tar);

// Writes the folder to `tar`: `tensors` are the gptq layout's tensors
// (model_writer.h) with their data back to back in `data`, copied into the
// shards a piece at a time; `config_json` is the source's config.json.
// INVALID_ARGUMENT when the config already has a quantization_config.
// *members gets the members' names in order. Every shard's metadata is
// {"format": "pt"}, as transformers writes it.
Status PackGptqCheckpoint(const std::vector<TensorLayout>& tensors, Spill* data,
                          std::string_view config_json, const Options& options,
                          const std::vector<std::pair<std::string, std::string_view>>& passthrough,
                          int64_t max_shard_bytes, ByteSink* tar,
                          std::vector<std::string>* members);

}  // namespace solverd::quant::internal

#endif  // SOLVERD_KERNELS_QUANT_FORMATS_GPTQ_CHECKPOINT_H_
