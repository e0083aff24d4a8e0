// A quantized layer's rows as ggml's quantized blocks (ggml-common.h), the
// bytes llama.cpp reads for each tensor type:
//  - Q4_0 (34 bytes per 32 weights): fp16 d, then byte j holds code j (low
//    nibble) and code j + 16 (high); w = d (code - 8).
//  - Q8_0 (34 bytes per 32): fp16 d, then 32 int8 values; w = d value.
//  - Q4_K (144 bytes per 256): fp16 d, fp16 dmin, 12 bytes of 6-bit group
//    scales and mins (groups 0-3 in the low 6 bits of bytes 0-3 and 4-7,
//    groups 4-7 as nibbles of bytes 8-11 with their top two bits in the
//    top bits of bytes 0-7), then 128 bytes: 64-weight chunk c in bytes
//    [32 c, 32 c + 32), byte l holding weight 64 c + l (low nibble) and
//    64 c + 32 + l (high); w = d sc code - dmin m.
//  - Q5_K (176 bytes per 256): as Q4_K with, after the scales, 32 bytes of
//    fifth bits (bit 2 c of byte l for weight 64 c + l, bit 2 c + 1 for
//    64 c + 32 + l) before the 128 bytes of nibbles.
//  - Q6_K (210 bytes per 256): 128 bytes of low nibbles, 64 of high bit
//    pairs, 16 int8 group scales, fp16 d; in each 128-weight half h, byte
//    l of its 64 low bytes holds weights l and l + 64 (low, high nibble),
//    byte l + 32 weights l + 32 and l + 96, and byte l of its 32 high bytes
//    the top two bits of weights l, l + 32, l + 64, l + 96 (bits 0-1 to
//    6-7); w = d sc (code - 32).
// Internal to kernels/quant. Stateless functions, safe from any thread.
#ifndef SOLVERD_KERNELS_QUANT_FORMATS_GGUF_BLOCKS_H_
#define SOLVERD_KERNELS_QUANT_FORMATS_GGUF_BLOCKS_H_

#include <cstdint>
#include <string>

#include "quant/quant.h"

namespace solverd::quant::internal {

inline constexpr int64_t kGgufSmallBlock = 32;  // weights per Q4_0 / Q8_0 block

// The ggml type a layer of `bits` is stored as: Q4_0 / Q8_0 (grids of 32
// symmetric columns) or, with K-quant grids, Q4_K / Q5_K / Q6_K.
uint32_t GgmlTypeOfLayer(int bits, bool k_quant);

// Bytes of a rows x cols layer in that type.
int64_t GgufLayerBytes(int64_t rows, int64_t cols, int bits, bool k_quant);

// Appends the rows x cols layer `q` as blocks of its type, row after row.
// REQUIRES: q is on the grids the type needs (see above), cols a whole
// number of blocks.
void AppendGgufBlocks(const QuantizedLayer& q, int64_t rows, int64_t cols, bool k_quant,
                      std::string* out);

}  // namespace solverd::quant::internal

#endif  // SOLVERD_KERNELS_QUANT_FORMATS_GGUF_BLOCKS_H_
