// The forward pass of a Llama-family decoder (llama, mistral, qwen2), as
// Hugging Face's transformers computes it, one piece at a time so that a
// caller can stop between the pieces (sequential calibration quantizes each
// block's layers before running them): token embedding, RMSNorm, RoPE
// (rotate-half pairing, theta from config.json), grouped-query attention
// with a causal mask, SwiGLU MLP. Activations are float32, row-major
// [tokens, width], tokens being `sequences` runs of `length` positions each.
// The arithmetic is llama_math.h's on both backends.
// The free functions are the CPU's, threaded where they take `threads`;
// a LlamaForward is thread-compatible.
#ifndef SOLVERD_KERNELS_QUANT_LLAMA_FORWARD_H_
#define SOLVERD_KERNELS_QUANT_LLAMA_FORWARD_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "common/device.h"
#include "common/status.h"

namespace solverd::quant {

struct LlamaShape {
  int64_t hidden = 0, intermediate = 0, heads = 0, kv_heads = 0, head_dim = 0;
  double rope_theta = 10000, rms_eps = 1e-6;
};

struct TokenRuns {
  int64_t sequences = 0, length = 0;
  int64_t tokens() const { return sequences * length; }
};

// The activations a block's pass keeps, each [tokens, width]: the residual
// stream and normed copy (hidden wide; o_proj and down_proj write their
// output into kNormed before it is added to the residual), the attention's
// query, key, value and output, the MLP's gate and up.
enum class Slot : int { kResidual, kNormed, kQuery, kKey, kValue, kMixed, kGate, kUp, kCount };

// The forward pass's steps on one backend's copy of the activations (host
// memory, or a CUDA device's). Weights are given from the host, as read
// from the checkpoint or dequantized, on every call.
class LlamaForward {
 public:
  virtual ~LlamaForward() = default;
  // kResidual = table[ids] ([vocab, hidden] table). REQUIRES: ids in range.
  virtual Status Embed(const std::vector<float>& table, const std::vector<int32_t>& ids) = 0;
  // kNormed = RmsNorm(kResidual) * weight.
  virtual Status Norm(const std::vector<float>& weight) = 0;
  // out = in W^T (+ bias): W [out's width, in's width].
  virtual Status Linear(Slot in, const std::vector<float>& weights,
                        const std::vector<float>* bias, Slot out) = 0;
  // RoPE on kQuery and kKey, then kMixed = causal attention of them over kValue.
  virtual Status Attend() = 0;
  // kGate = silu(kGate) * kUp.
  virtual Status Gate() = 0;
  // kResidual += kNormed.
  virtual Status AddToResidual() = 0;
  // The sum over tokens of x x^T for the rows x of `in`, F64 [width, width].
  virtual Status SumOfOuterProducts(Slot in, std::vector<double>* h) = 0;
  // The sum over tokens of x (r - x)^T, x this pass's rows of `in` and r
  // `reference`'s (a pass of the same backend over the same tokens), F64
  // [width, width], not symmetric: the drift TowardReferenceOutputs()
  // (gptq_hessian.h) corrects for.
  virtual Status SumOfDriftProducts(Slot in, LlamaForward* reference,
                                    std::vector<double>* drift) = 0;
  // The slot's values on the host (for tests).
  virtual Status Read(Slot slot, std::vector<float>* out) = 0;
};

// The width of `slot`'s rows for `shape`.
int64_t SlotWidth(const LlamaShape& shape, Slot slot);

// The forward pass of `runs` tokens on `device` (CUDA: on `stream`, its
// activations allocated there now: RESOURCE_EXHAUSTED naming the bytes
// when they do not fit), the CPU's on `threads` threads.
Status MakeLlamaForward(const Device& device, StreamHandle stream, const LlamaShape& shape,
                        const TokenRuns& runs, int threads, std::unique_ptr<LlamaForward>* out);

// x[t] = table[ids[t]] ([vocab, width] table). REQUIRES: ids in range.
void Embed(const std::vector<float>& table, int64_t width, const std::vector<int32_t>& ids,
           std::vector<float>* x);

// out = x / sqrt(mean(x^2) + eps) * weight, per token.
void RmsNorm(const std::vector<float>& x, int64_t width, const std::vector<float>& weight,
             double eps, std::vector<float>* out);

// y = x W^T (+ bias): x [tokens, in], W [out, in], y [tokens, out].
void Linear(const std::vector<float>& x, int64_t in, const std::vector<float>& weights,
            int64_t out, const std::vector<float>* bias, int threads, std::vector<float>* y);

// cos and sin [length, head_dim / 2] of RoPE's angles, as transformers
// computes them (float32 inverse frequencies times float32 positions).
void RopeTable(const LlamaShape& shape, int64_t length, std::vector<float>* cos,
               std::vector<float>* sin);

// Rotates each head of q ([tokens, heads * head_dim]) by its position in
// its run: element i < head_dim / 2 pairs with i + head_dim / 2.
void ApplyRope(const LlamaShape& shape, const TokenRuns& runs, int64_t heads,
               std::vector<float>* q);
// The same with RopeTable()'s cos and sin for runs.length, made once.
void ApplyRope(const LlamaShape& shape, const TokenRuns& runs, int64_t heads,
               const std::vector<float>& cos, const std::vector<float>& sin,
               std::vector<float>* q);

// softmax(q k^T / sqrt(head_dim), causal) v per run and head, query head h
// reading key-value head h / (heads / kv_heads); out [tokens, heads * head_dim].
void CausalAttention(const LlamaShape& shape, const TokenRuns& runs,
                     const std::vector<float>& q, const std::vector<float>& k,
                     const std::vector<float>& v, int threads, std::vector<float>* out);

// gate = silu(gate) * up, elementwise.
void SwiGlu(const std::vector<float>& up, std::vector<float>* gate);

// x += y, elementwise.
void AddInPlace(const std::vector<float>& y, std::vector<float>* x);

namespace internal {
// The CUDA backend's MakeLlamaForward (llama_forward_cuda.cu).
Status MakeCudaLlamaForward(const Device& device, StreamHandle stream, const LlamaShape& shape,
                            const TokenRuns& runs, std::unique_ptr<LlamaForward>* out);
}  // namespace internal

}  // namespace solverd::quant

#endif  // SOLVERD_KERNELS_QUANT_LLAMA_FORWARD_H_
