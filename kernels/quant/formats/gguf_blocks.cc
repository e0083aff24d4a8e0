#include "quant/formats/gguf_blocks.h"

#include <cmath>

#include "quant/formats/gguf.h"
#include "quant/half.h"
#include "quant/kquant_math.h"

namespace solverd::quant::internal {
namespace {

constexpr int64_t kBlock = kGgufSmallBlock;

void PutHalf(float value, std::string* out) { PutLittleEndian<uint16_t>(FloatToHalf(value), out); }

// Q4_0 or Q8_0: one group of 32 per block, row-major.
void AppendSmallBlocks(const QuantizedLayer& q, int64_t weights, std::string* out) {
  for (int64_t b = 0; b < weights / kBlock; ++b) {
    const uint8_t* codes = &q.codes[b * kBlock];
    PutHalf(q.scales[b], out);
    if (q.bits == 4) {
      for (int j = 0; j < kBlock / 2; ++j) {
        out->push_back(static_cast<char>(codes[j] | (codes[j + kBlock / 2] << 4)));
      }
    } else {
      for (int j = 0; j < kBlock; ++j) out->push_back(static_cast<char>(codes[j] - 128));
    }
  }
}

// The integer that `value` is a multiple of `unit` by (exactly, as the
// grids were built: an fp16 unit times an integer below 2^8 is exact in
// float); 0 when the unit is.
int Multiple(float value, float unit) {
  return unit == 0 ? 0 : static_cast<int>(std::lrint(value / unit));
}

// Q4_K and Q5_K: a super-block's 6-bit scales and mins in ggml's 12 bytes.
void PutScalesAndMins(const int* sc, const int* m, std::string* out) {
  uint8_t packed[12] = {};
  for (int g = 0; g < 8; ++g) {
    if (g < 4) {
      packed[g] = static_cast<uint8_t>(sc[g]);
      packed[g + 4] = static_cast<uint8_t>(m[g]);
    } else {
      packed[g + 4] = static_cast<uint8_t>((sc[g] & 0xF) | ((m[g] & 0xF) << 4));
      packed[g - 4] |= static_cast<uint8_t>((sc[g] >> 4) << 6);
      packed[g] |= static_cast<uint8_t>((m[g] >> 4) << 6);
    }
  }
  out->append(reinterpret_cast<const char*>(packed), sizeof(packed));
}

// Super-block `s` (of all the layer's, row-major) with codes `codes`.
void AppendQ45K(const QuantizedLayer& q, int64_t s, const uint8_t* codes, std::string* out) {
  const float d = q.super_scales[s], dmin = q.super_mins[s];
  int sc[8], m[8];
  for (int g = 0; g < 8; ++g) {
    sc[g] = Multiple(q.scales[s * 8 + g], d);
    m[g] = Multiple(q.offsets[s * 8 + g], dmin);
  }
  PutHalf(d, out);
  PutHalf(dmin, out);
  PutScalesAndMins(sc, m, out);
  if (q.bits == 5) {
    uint8_t high[32] = {};
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        high[l] |= static_cast<uint8_t>(((codes[64 * c + l] >> 4) << (2 * c)) |
                                        ((codes[64 * c + 32 + l] >> 4) << (2 * c + 1)));
      }
    }
    out->append(reinterpret_cast<const char*>(high), sizeof(high));
  }
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      out->push_back(static_cast<char>((codes[64 * c + l] & 0xF) |
                                       ((codes[64 * c + 32 + l] & 0xF) << 4)));
    }
  }
}

void AppendQ6K(const QuantizedLayer& q, int64_t s, const uint8_t* codes, std::string* out) {
  const float d = q.super_scales[s];
  uint8_t low[128], high[64];
  for (int h = 0; h < 2; ++h) {
    const uint8_t* c = codes + 128 * h;
    for (int l = 0; l < 32; ++l) {
      low[64 * h + l] = static_cast<uint8_t>((c[l] & 0xF) | ((c[l + 64] & 0xF) << 4));
      low[64 * h + l + 32] = static_cast<uint8_t>((c[l + 32] & 0xF) | ((c[l + 96] & 0xF) << 4));
      high[32 * h + l] = static_cast<uint8_t>((c[l] >> 4) | ((c[l + 32] >> 4) << 2) |
                                              ((c[l + 64] >> 4) << 4) | ((c[l + 96] >> 4) << 6));
    }
  }
  out->append(reinterpret_cast<const char*>(low), sizeof(low));
  out->append(reinterpret_cast<const char*>(high), sizeof(high));
  for (int g = 0; g < 16; ++g) {
    out->push_back(static_cast<char>(static_cast<int8_t>(Multiple(q.scales[s * 16 + g], d))));
  }
  PutHalf(d, out);
}

}  // namespace

uint32_t GgmlTypeOfLayer(int bits, bool k_quant) {
  if (!k_quant) return bits == 4 ? kGgmlQ4_0 : kGgmlQ8_0;
  return bits == 4 ? kGgmlQ4_K : bits == 5 ? kGgmlQ5_K : kGgmlQ6_K;
}

int64_t GgufLayerBytes(int64_t rows, int64_t cols, int bits, bool k_quant) {
  if (k_quant) return rows * cols / kSuperBlock * KBlockBytes(bits);
  return rows * cols / kBlock * (2 + kBlock * bits / 8);
}

void AppendGgufBlocks(const QuantizedLayer& q, int64_t rows, int64_t cols, bool k_quant,
                      std::string* out) {
  out->reserve(out->size() + static_cast<size_t>(GgufLayerBytes(rows, cols, q.bits, k_quant)));
  if (!k_quant) return AppendSmallBlocks(q, rows * cols, out);
  for (int64_t s = 0; s < rows * cols / kSuperBlock; ++s) {
    const uint8_t* codes = &q.codes[s * kSuperBlock];
    if (q.bits == 6) {
      AppendQ6K(q, s, codes, out);
    } else {
      AppendQ45K(q, s, codes, out);
    }
  }
}

}  // namespace solverd::quant::internal
