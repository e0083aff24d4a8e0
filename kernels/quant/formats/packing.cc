#include "quant/formats/packing.h"

namespace solverd::quant {

std::string PackCodes(const std::vector<uint8_t>& codes, int64_t rows, int64_t cols, int bits) {
  const int64_t row_bytes = PackedRowBytes(cols, bits);
  std::string out(static_cast<size_t>(rows * row_bytes), '\0');
  for (int64_t r = 0; r < rows; ++r) {
    auto* row = reinterpret_cast<uint8_t*>(out.data() + r * row_bytes);
    for (int64_t c = 0; c < cols; ++c) {
      const uint32_t code = codes[r * cols + c];
      const int64_t bit = c * bits;
      // A code spans at most two bytes (bits <= 8).
      const uint32_t shifted = code << (bit % 8);
      row[bit / 8] |= static_cast<uint8_t>(shifted & 0xff);
      if ((bit % 8) + bits > 8) row[bit / 8 + 1] |= static_cast<uint8_t>(shifted >> 8);
    }
  }
  return out;
}

std::vector<uint8_t> UnpackCodes(std::string_view packed, int64_t rows, int64_t cols, int bits) {
  const int64_t row_bytes = PackedRowBytes(cols, bits);
  const uint32_t mask = (1u << bits) - 1;
  std::vector<uint8_t> codes(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const auto* row = reinterpret_cast<const uint8_t*>(packed.data() + r * row_bytes);
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t bit = c * bits;
      uint32_t v = row[bit / 8];
      if ((bit % 8) + bits > 8) v |= static_cast<uint32_t>(row[bit / 8 + 1]) << 8;
      codes[r * cols + c] = static_cast<uint8_t>((v >> (bit % 8)) & mask);
    }
  }
  return codes;
}

}  // namespace solverd::quant
