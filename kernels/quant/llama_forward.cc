#include "quant/llama_forward.h"

#include <algorithm>
#include <cmath>

#include "common/parallel_for.h"

namespace solverd::quant {

void Embed(const std::vector<float>& table, int64_t width, const std::vector<int32_t>& ids,
           std::vector<float>* x) {
  x->resize(ids.size() * static_cast<size_t>(width));
  for (size_t t = 0; t < ids.size(); ++t) {
    std::copy_n(&table[static_cast<size_t>(ids[t]) * width], width, &(*x)[t * width]);
  }
}

void RmsNorm(const std::vector<float>& x, int64_t width, const std::vector<float>& weight,
             double eps, std::vector<float>* out) {
  out->resize(x.size());
  const int64_t tokens = static_cast<int64_t>(x.size()) / width;
  for (int64_t t = 0; t < tokens; ++t) {
    const float* row = &x[t * width];
    double sq = 0;
    for (int64_t i = 0; i < width; ++i) sq += static_cast<double>(row[i]) * row[i];
    const float scale = static_cast<float>(1.0 / std::sqrt(sq / width + eps));
    for (int64_t i = 0; i < width; ++i) (*out)[t * width + i] = row[i] * scale * weight[i];
  }
}

namespace {

// Tokens one pass over a weight row serves (the row stays in registers
// and cache across them).
constexpr int64_t kTokensPerPass = 4;

}  // namespace

void Linear(const std::vector<float>& x, int64_t in, const std::vector<float>& weights,
            int64_t out, const std::vector<float>* bias, int threads, std::vector<float>* y) {
  const int64_t tokens = static_cast<int64_t>(x.size()) / in;
  y->resize(static_cast<size_t>(tokens * out));
  const int64_t passes = (tokens + kTokensPerPass - 1) / kTokensPerPass;
  ParallelFor(passes, threads, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t first = p * kTokensPerPass;
      const int64_t count = std::min(kTokensPerPass, tokens - first);
      for (int64_t o = 0; o < out; ++o) {
        const float* w = &weights[o * in];
        float sums[kTokensPerPass] = {};
        for (int64_t k = 0; k < count; ++k) {
          const float* xr = &x[(first + k) * in];
          float s = 0;
          for (int64_t i = 0; i < in; ++i) s += xr[i] * w[i];
          sums[k] = s;
        }
        for (int64_t k = 0; k < count; ++k) {
          (*y)[(first + k) * out + o] = sums[k] + (bias != nullptr ? (*bias)[o] : 0.0f);
        }
      }
    }
  }, 1);
}

void ApplyRope(const LlamaShape& shape, const TokenRuns& runs, int64_t heads,
               std::vector<float>* q) {
  const int64_t d = shape.head_dim, half = d / 2, width = heads * d;
  std::vector<float> cos(static_cast<size_t>(runs.length * half));
  std::vector<float> sin(cos.size());
  for (int64_t pos = 0; pos < runs.length; ++pos) {
    for (int64_t i = 0; i < half; ++i) {
      // As transformers: float32 inverse frequencies times float32 positions.
      const float inverse = static_cast<float>(
          1.0 / std::pow(shape.rope_theta, static_cast<double>(2 * i) / static_cast<double>(d)));
      const float angle = static_cast<float>(pos) * inverse;
      cos[pos * half + i] = std::cos(angle);
      sin[pos * half + i] = std::sin(angle);
    }
  }
  for (int64_t t = 0; t < runs.tokens(); ++t) {
    const int64_t pos = t % runs.length;
    for (int64_t h = 0; h < heads; ++h) {
      float* x = &(*q)[t * width + h * d];
      for (int64_t i = 0; i < half; ++i) {
        const float a = x[i], b = x[i + half];
        const float c = cos[pos * half + i], s = sin[pos * half + i];
        x[i] = a * c - b * s;
        x[i + half] = b * c + a * s;
      }
    }
  }
}

void CausalAttention(const LlamaShape& shape, const TokenRuns& runs,
                     const std::vector<float>& q, const std::vector<float>& k,
                     const std::vector<float>& v, int threads, std::vector<float>* out) {
  const int64_t d = shape.head_dim, group = shape.heads / shape.kv_heads;
  const int64_t q_width = shape.heads * d, kv_width = shape.kv_heads * d;
  out->assign(static_cast<size_t>(runs.tokens() * q_width), 0.0f);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  // One task per run and query head.
  ParallelFor(runs.sequences * shape.heads, threads, [&](int64_t begin, int64_t end) {
    std::vector<double> p(static_cast<size_t>(runs.length));
    for (int64_t task = begin; task < end; ++task) {
      const int64_t s = task / shape.heads, h = task % shape.heads, kv = h / group;
      const int64_t base = s * runs.length;
      for (int64_t i = 0; i < runs.length; ++i) {
        const float* qi = &q[(base + i) * q_width + h * d];
        double largest = -INFINITY;
        for (int64_t j = 0; j <= i; ++j) {
          const float* kj = &k[(base + j) * kv_width + kv * d];
          float dot = 0;
          for (int64_t c = 0; c < d; ++c) dot += qi[c] * kj[c];
          p[j] = dot * scale;
          largest = std::max(largest, p[j]);
        }
        double total = 0;
        for (int64_t j = 0; j <= i; ++j) total += (p[j] = std::exp(p[j] - largest));
        float* o = &(*out)[(base + i) * q_width + h * d];
        for (int64_t j = 0; j <= i; ++j) {
          const float weight = static_cast<float>(p[j] / total);
          const float* vj = &v[(base + j) * kv_width + kv * d];
          for (int64_t c = 0; c < d; ++c) o[c] += weight * vj[c];
        }
      }
    }
  }, 1);
}

void SwiGlu(const std::vector<float>& up, std::vector<float>* gate) {
  for (size_t i = 0; i < gate->size(); ++i) {
    const float g = (*gate)[i];
    (*gate)[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void AddInPlace(const std::vector<float>& y, std::vector<float>* x) {
  for (size_t i = 0; i < x->size(); ++i) (*x)[i] += y[i];
}

}  // namespace solverd::quant
