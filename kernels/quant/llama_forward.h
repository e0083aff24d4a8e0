// The forward pass of a Llama-family decoder (llama, mistral, qwen2), as
// Hugging Face's transformers computes it, one piece at a time so that a
// caller can stop between the pieces (sequential calibration quantizes each
// block's layers before running them): token embedding, RMSNorm, RoPE
// (rotate-half pairing, theta from config.json), grouped-query attention
// with a causal mask, SwiGLU MLP. Activations are float32, row-major
// [tokens, width], tokens being `sequences` runs of `length` positions each;
// sums are float32 except the norms' and softmax's, which are float64.
// CPU, threaded; thread-compatible.
#ifndef SOLVERD_KERNELS_QUANT_LLAMA_FORWARD_H_
#define SOLVERD_KERNELS_QUANT_LLAMA_FORWARD_H_

#include <cstdint>
#include <vector>

namespace solverd::quant {

struct LlamaShape {
  int64_t hidden = 0, intermediate = 0, heads = 0, kv_heads = 0, head_dim = 0;
  double rope_theta = 10000, rms_eps = 1e-6;
};

struct TokenRuns {
  int64_t sequences = 0, length = 0;
  int64_t tokens() const { return sequences * length; }
};

// x[t] = table[ids[t]] ([vocab, width] table). REQUIRES: ids in range.
void Embed(const std::vector<float>& table, int64_t width, const std::vector<int32_t>& ids,
           std::vector<float>* x);

// out = x / sqrt(mean(x^2) + eps) * weight, per token.
void RmsNorm(const std::vector<float>& x, int64_t width, const std::vector<float>& weight,
             double eps, std::vector<float>* out);

// y = x W^T (+ bias): x [tokens, in], W [out, in], y [tokens, out].
void Linear(const std::vector<float>& x, int64_t in, const std::vector<float>& weights,
            int64_t out, const std::vector<float>* bias, int threads, std::vector<float>* y);

// Rotates each head of q ([tokens, heads * head_dim]) by its position in
// its run: element i < head_dim / 2 pairs with i + head_dim / 2.
void ApplyRope(const LlamaShape& shape, const TokenRuns& runs, int64_t heads,
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

}  // namespace solverd::quant

#endif  // SOLVERD_KERNELS_QUANT_LLAMA_FORWARD_H_
