// Bit packing of quantization codes, as solverd's quantized safetensors
// files store them: each row of `cols` codes of `bits` bits is a
// little-endian bit stream (code c of the row occupies bits
// [c * bits, (c + 1) * bits) of the row, least significant bit first),
// padded to whole bytes. So 4-bit codes are two per byte, low nibble first,
// and 8-bit codes are one byte each. Pure functions.
#ifndef SOLVERD_KERNELS_QUANT_FORMATS_PACKING_H_
#define SOLVERD_KERNELS_QUANT_FORMATS_PACKING_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace solverd::quant {

inline int64_t PackedRowBytes(int64_t cols, int bits) { return (cols * bits + 7) / 8; }

// REQUIRES: codes.size() == rows * cols, every code < 2^bits, 1 <= bits <= 8.
std::string PackCodes(const std::vector<uint8_t>& codes, int64_t rows, int64_t cols, int bits);

// REQUIRES: packed.size() == rows * PackedRowBytes(cols, bits).
std::vector<uint8_t> UnpackCodes(std::string_view packed, int64_t rows, int64_t cols, int bits);

}  // namespace solverd::quant

#endif  // SOLVERD_KERNELS_QUANT_FORMATS_PACKING_H_
