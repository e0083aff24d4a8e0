// Sequential calibration of a Llama-family checkpoint from token ids, as
// AutoGPTQ and llm-compressor do it: the model runs block by block on the
// calibration tokens (llama_forward.h), and each group of layers that reads
// one input (q/k/v, then o, then gate/up, then down) is quantized from the
// Hessian of that input as the layers already quantized before it produce
// it, then run quantized to produce the next input. So block k's Hessians
// see the rounding of blocks 0..k-1 (and of the layers before them in
// block k), which the fp32 model's activations do not.
//
// GPTQ rounds toward the unquantized model's outputs, not the layer's own
// on the quantized inputs (GPTAQ's asymmetric calibration, Li et al. 2025):
// a reference pass of the unquantized model runs beside the quantized one,
// and each layer's weights are first moved to the least-squares fit of the
// reference outputs from the quantized inputs (TowardReferenceOutputs,
// gptq_hessian.h). Without it, calibrating on the quantized blocks' outputs
// did worse than on the fp32 model's at 4 bits on the test model.
//
// The result is a calibration file (calibration.h) of those Hessians, F64
// with their token count (and GPTQ's drifts), one entry per input:
// quantizing the model from it gives exactly the codes the pass chose, and
// the client can keep it to quantize again (another format, another width)
// without a second pass. One block's weights and the activations of all
// tokens (twice, for GPTQ) are held at a time.
// Stateless functions, safe from any thread (the pass runs on the threads
// the layer options give it).
#ifndef SOLVERD_KERNELS_QUANT_SEQUENTIAL_CALIBRATION_H_
#define SOLVERD_KERNELS_QUANT_SEQUENTIAL_CALIBRATION_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/cancel_token.h"
#include "common/device.h"
#include "common/progress.h"
#include "common/status.h"
#include "quant/llama_forward.h"
#include "quant/model.h"

namespace solverd::quant {

// Token ids from a safetensors file with the tensor "tokens", I32 or I64
// [sequences, length], each in [0, vocab), length at most `max_length` (the
// model's context; 0: no bound). INVALID_ARGUMENT naming what is wrong.
Status ReadCalibrationTokens(std::string_view file, int64_t vocab, int64_t max_length,
                             std::vector<int32_t>* ids, TokenRuns* runs);

// Token ids from UTF-8 `text` by `tokenizer_json` (bpe_tokenizer.h), cut
// into `sequences` runs (0: as many as the text holds, at most 128) of
// `length` tokens (0: 512, or `max_length` if shorter; a given length must
// not exceed it): each the tokens the tokenizer starts a sequence with
// (Llama 2's <s>; none for most byte-level vocabularies), then the text's
// next tokens. INVALID_ARGUMENT saying what is wrong
// (the text too short for what was asked, the tokenizer, the UTF-8).
Status CalibrationTokensFromText(std::string_view text, std::string_view tokenizer_json,
                                 int64_t vocab, int64_t max_length, int64_t sequences,
                                 int64_t length, std::vector<int32_t>* ids, TokenRuns* runs);

// Whether the pass calibrates tensor `name`: a decoder block's attention
// or MLP projection ("model.layers.N.self_attn.q_proj.weight", ...).
bool CalibratedBySequentialPass(std::string_view name);

// Bytes the pass holds beyond the plan's largest layer: the activations
// (on the device that runs it; twice for GPTQ, whose reference pass runs
// beside), the widest Hessian being factored, the codes of the layers it
// has quantized (a byte per weight), and with `file_in_memory` the file of
// Hessians (and GPTQ's drifts) it returns (44 GB of Hessians in F64 for a
// 7B Llama).
int64_t SequentialMemoryBytes(const ModelPlan& plan, const TokenRuns& runs, Method method,
                              bool file_in_memory);

// The pass over `plan` (a Llama-family checkpoint; bits per layer as the
// plan gives them) with `options.layer`; reports a progress event per layer
// (stage "calibration: <layer>"). Each layer it quantizes goes into
// plan->done_layers as it is done (so QuantizeModel writes it without
// quantizing it again, and a cancel keeps it). The file goes to `path`
// when given (its tensor data spilled beside it as it is produced; removed
// on an error), else into *calibration_file. A cancel returns CANCELLED.
Status SequentialCalibration(const Device& device, StreamHandle stream, ModelPlan* plan,
                             const ModelOptions& options, const std::vector<int32_t>& ids,
                             const TokenRuns& runs, ProgressSink* sink,
                             const CancelToken* cancel, const std::string& path,
                             std::string* calibration_file);

}  // namespace solverd::quant

#endif  // SOLVERD_KERNELS_QUANT_SEQUENTIAL_CALIBRATION_H_
