// Code books, absmax and double quant (host), and the CPU backend of the
// block-wise methods.
#include "quant/blockwise.h"

#include <algorithm>
#include <cmath>

#include "common/parallel_for.h"
#include "quant/quant_backend.h"

namespace solverd::quant {

const std::vector<float>& Nf4Codebook() {
  static const std::vector<float> book = {
      -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
      -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
      0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
      0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};
  return book;
}

const std::vector<float>& Int8Codebook() {
  static const std::vector<float> book = [] {
    std::vector<float> b;
    for (int k = -127; k <= 127; ++k) b.push_back(static_cast<float>(k) / 127.0f);
    return b;
  }();
  return book;
}

const std::vector<float>& CodebookFor(Method method) {
  return method == Method::kNf4 ? Nf4Codebook() : Int8Codebook();
}

std::vector<float> BlockAbsmax(const float* w, int64_t n, int64_t block) {
  std::vector<float> absmax(static_cast<size_t>((n + block - 1) / block), 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    float& a = absmax[i / block];
    a = std::max(a, std::fabs(w[i]));
  }
  return absmax;
}

void DoubleQuantize(std::vector<float>* absmax, QuantizedLayer* out) {
  std::vector<float>& a = *absmax;
  double sum = 0;
  for (const float v : a) sum += v;
  out->absmax_offset = a.empty() ? 0.0f : static_cast<float>(sum / static_cast<double>(a.size()));
  const int64_t n = static_cast<int64_t>(a.size());
  out->absmax_codes.assign(a.size(), 128);
  out->absmax_scales.assign(static_cast<size_t>((n + kDoubleQuantBlock - 1) / kDoubleQuantBlock),
                            1.0f);
  for (int64_t b0 = 0; b0 < n; b0 += kDoubleQuantBlock) {
    const int64_t b1 = std::min(n, b0 + kDoubleQuantBlock);
    float spread = 0;
    for (int64_t b = b0; b < b1; ++b) {
      spread = std::max(spread, std::fabs(a[b] - out->absmax_offset));
    }
    const float scale = spread > 0 ? spread / 127.0f : 1.0f;
    out->absmax_scales[b0 / kDoubleQuantBlock] = scale;
    for (int64_t b = b0; b < b1; ++b) {
      const float code = std::rint((a[b] - out->absmax_offset) / scale) + 128.0f;
      out->absmax_codes[b] = static_cast<uint8_t>(std::min(255.0f, std::max(1.0f, code)));
      a[b] = DoubleQuantAbsmax(out->absmax_codes[b], scale, out->absmax_offset);
    }
  }
}

void DequantizeBlockwise(QuantizedLayer* out) {
  out->dequantized.resize(out->codes.size());
  for (size_t i = 0; i < out->codes.size(); ++i) {
    out->dequantized[i] = out->absmax[i / out->group_size] * out->codebook[out->codes[i]];
  }
}

namespace internal {

Status BlockwiseCpu(const Layer& layer, const Options& options, QuantizedLayer* out) {
  const int64_t n = layer.rows * layer.cols;
  const int64_t block = options.group_size;
  const std::vector<float>& book = CodebookFor(options.method);
  out->bits = EffectiveBits(options);
  out->group_size = block;
  out->codebook = book;
  out->absmax = BlockAbsmax(layer.weights.data(), n, block);
  if (options.double_quant) DoubleQuantize(&out->absmax, out);
  out->codes.assign(static_cast<size_t>(n), 0);
  const int64_t blocks = static_cast<int64_t>(out->absmax.size());
  ParallelFor(blocks, options.threads, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const float a = out->absmax[b];
      for (int64_t i = b * block; i < std::min(n, (b + 1) * block); ++i) {
        const float x = a > 0 ? layer.weights[i] / a : 0.0f;
        out->codes[i] =
            static_cast<uint8_t>(NearestCode(x, book.data(), static_cast<int>(book.size())));
      }
    }
  });
  DequantizeBlockwise(out);
  return Status::Ok();
}

}  // namespace internal
}  // namespace solverd::quant
