// Block-wise absmax quantization (Dettmers et al., "8-bit Optimizers via
// Block-wise Quantization"; NF4 from QLoRA): the weights, taken row-major,
// are cut into blocks of B consecutive values; each block stores its
// absmax a and each weight the code of the code-book entry nearest w / a.
//
// Double quant (QLoRA) stores the absmax values themselves in 8 bits:
// absmax[b] ~ offset + scale[b / 256] * (code[b] - 128), with offset the
// mean absmax and scale the largest |absmax - offset| of the 256 / 127.
// The weights are normalised by the dequantized absmax, so the stored
// model is exactly what the error report measures.
// Pure functions, safe from any thread.
#ifndef SOLVERD_KERNELS_QUANT_BLOCKWISE_H_
#define SOLVERD_KERNELS_QUANT_BLOCKWISE_H_

#include <cstdint>
#include <vector>

#include "quant/quant.h"

namespace solverd::quant {

inline constexpr int64_t kDoubleQuantBlock = 256;

// NF4's 16 values (normal quantiles, exact zero), ascending.
const std::vector<float>& Nf4Codebook();
// int8-blockwise: k / 127 for k = -127..127 (255 entries).
const std::vector<float>& Int8Codebook();
const std::vector<float>& CodebookFor(Method method);

// The absmax of each block of `block` values of w[0..n).
std::vector<float> BlockAbsmax(const float* w, int64_t n, int64_t block);

// One absmax value from its double-quant form.
inline float DoubleQuantAbsmax(uint8_t code, float scale, float offset) {
  return offset + scale * (static_cast<float>(code) - 128.0f);
}

// Fills out->dequantized: absmax[i / group_size] * codebook[codes[i]].
// REQUIRES: every code indexes the codebook.
void DequantizeBlockwise(QuantizedLayer* out);

// Quantizes `absmax` in place to its double-quant form (see above) and
// fills the stored fields of `out`.
void DoubleQuantize(std::vector<float>* absmax, QuantizedLayer* out);

}  // namespace solverd::quant

#endif  // SOLVERD_KERNELS_QUANT_BLOCKWISE_H_
