#include "quant/llama_forward.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "common/parallel_for.h"
#include "quant/gptq_hessian.h"
#include "quant/llama_math.h"

namespace solverd::quant {

using internal::LanesDot;

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
    const float scale = internal::RmsScale(row, width, eps);
    for (int64_t i = 0; i < width; ++i) (*out)[t * width + i] = row[i] * scale * weight[i];
  }
}

namespace {

// Tokens one pass over a weight row serves (the row stays in cache across
// them).
constexpr int64_t kTokensPerPass = 4;

}  // namespace

void Linear(const std::vector<float>& x, int64_t in, const std::vector<float>& weights,
            int64_t out, const std::vector<float>* bias, int threads, std::vector<float>* y) {
  const int64_t tokens = static_cast<int64_t>(x.size()) / in;
  y->resize(static_cast<size_t>(tokens * out));
  const float* b = bias != nullptr ? bias->data() : nullptr;
  const int64_t passes = (tokens + kTokensPerPass - 1) / kTokensPerPass;
  ParallelFor(passes, threads, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t first = p * kTokensPerPass;
      const int64_t count = std::min(kTokensPerPass, tokens - first);
      for (int64_t o = 0; o < out; ++o) {
        for (int64_t k = 0; k < count; ++k) {
          const float dot = LanesDot(&x[(first + k) * in], &weights[o * in], in);
          (*y)[(first + k) * out + o] = internal::LinearOutput(dot, b, o);
        }
      }
    }
  }, 1);
}

void RopeTable(const LlamaShape& shape, int64_t length, std::vector<float>* cos,
               std::vector<float>* sin) {
  const int64_t d = shape.head_dim, half = d / 2;
  cos->resize(static_cast<size_t>(length * half));
  sin->resize(cos->size());
  for (int64_t pos = 0; pos < length; ++pos) {
    for (int64_t i = 0; i < half; ++i) {
      const float inverse = static_cast<float>(
          1.0 / std::pow(shape.rope_theta, static_cast<double>(2 * i) / static_cast<double>(d)));
      const float angle = static_cast<float>(pos) * inverse;
      (*cos)[pos * half + i] = std::cos(angle);
      (*sin)[pos * half + i] = std::sin(angle);
    }
  }
}

void ApplyRope(const LlamaShape& shape, const TokenRuns& runs, int64_t heads,
               std::vector<float>* q) {
  std::vector<float> cos, sin;
  RopeTable(shape, runs.length, &cos, &sin);
  ApplyRope(shape, runs, heads, cos, sin, q);
}

void ApplyRope(const LlamaShape& shape, const TokenRuns& runs, int64_t heads,
               const std::vector<float>& cos, const std::vector<float>& sin,
               std::vector<float>* q) {
  const int64_t d = shape.head_dim, half = d / 2, width = heads * d;
  for (int64_t t = 0; t < runs.tokens(); ++t) {
    const int64_t pos = t % runs.length;
    for (int64_t h = 0; h < heads; ++h) {
      float* x = &(*q)[t * width + h * d];
      for (int64_t i = 0; i < half; ++i) {
        internal::RotatePair(cos[pos * half + i], sin[pos * half + i], &x[i], &x[i + half]);
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
          p[j] = LanesDot(qi, &k[(base + j) * kv_width + kv * d], d) * scale;
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
  for (size_t i = 0; i < gate->size(); ++i) (*gate)[i] = internal::SiluTimes((*gate)[i], up[i]);
}

void AddInPlace(const std::vector<float>& y, std::vector<float>* x) {
  for (size_t i = 0; i < x->size(); ++i) (*x)[i] += y[i];
}

int64_t SlotWidth(const LlamaShape& shape, Slot slot) {
  switch (slot) {
    case Slot::kQuery:
    case Slot::kMixed: return shape.heads * shape.head_dim;
    case Slot::kKey:
    case Slot::kValue: return shape.kv_heads * shape.head_dim;
    case Slot::kGate:
    case Slot::kUp: return shape.intermediate;
    default: return shape.hidden;
  }
}

namespace {

class CpuLlamaForward final : public LlamaForward {
 public:
  CpuLlamaForward(const LlamaShape& shape, const TokenRuns& runs, int threads)
      : shape_(shape), runs_(runs), threads_(threads) {
    RopeTable(shape, runs.length, &cos_, &sin_);
  }

  Status Embed(const std::vector<float>& table, const std::vector<int32_t>& ids) override {
    quant::Embed(table, shape_.hidden, ids, &At(Slot::kResidual));
    return Status::Ok();
  }
  Status Norm(const std::vector<float>& weight) override {
    RmsNorm(At(Slot::kResidual), shape_.hidden, weight, shape_.rms_eps, &At(Slot::kNormed));
    return Status::Ok();
  }
  Status Linear(Slot in, const std::vector<float>& weights, const std::vector<float>* bias,
                Slot out) override {
    quant::Linear(At(in), SlotWidth(shape_, in), weights, SlotWidth(shape_, out), bias,
                  threads_, &At(out));
    return Status::Ok();
  }
  Status Attend() override {
    ApplyRope(shape_, runs_, shape_.heads, cos_, sin_, &At(Slot::kQuery));
    ApplyRope(shape_, runs_, shape_.kv_heads, cos_, sin_, &At(Slot::kKey));
    CausalAttention(shape_, runs_, At(Slot::kQuery), At(Slot::kKey), At(Slot::kValue),
                    threads_, &At(Slot::kMixed));
    return Status::Ok();
  }
  Status Gate() override {
    SwiGlu(At(Slot::kUp), &At(Slot::kGate));
    return Status::Ok();
  }
  Status AddToResidual() override {
    AddInPlace(At(Slot::kNormed), &At(Slot::kResidual));
    return Status::Ok();
  }
  Status SumOfOuterProducts(Slot in, std::vector<double>* h) override {
    *h = internal::SumOfOuterProducts(At(in).data(), runs_.tokens(), SlotWidth(shape_, in),
                                      threads_);
    return Status::Ok();
  }
  Status SumOfDriftProducts(Slot in, LlamaForward* reference,
                            std::vector<double>* drift) override {
    auto* other = dynamic_cast<CpuLlamaForward*>(reference);
    if (other == nullptr) return Internal("SumOfDriftProducts: the reference is not a CPU pass");
    const std::vector<float>& x = At(in);
    std::vector<float> apart(x.size());
    for (size_t k = 0; k < x.size(); ++k) apart[k] = other->At(in)[k] - x[k];
    *drift = internal::SumOfCrossProducts(x.data(), apart.data(), runs_.tokens(),
                                          SlotWidth(shape_, in), threads_);
    return Status::Ok();
  }
  Status Read(Slot slot, std::vector<float>* out) override {
    *out = At(slot);
    return Status::Ok();
  }

 private:
  std::vector<float>& At(Slot slot) { return slots_[static_cast<int>(slot)]; }

  const LlamaShape shape_;
  const TokenRuns runs_;
  const int threads_;
  std::array<std::vector<float>, static_cast<int>(Slot::kCount)> slots_;
  std::vector<float> cos_, sin_;  // RoPE's table, as RopeTable() gives it
};

}  // namespace

Status MakeLlamaForward(const Device& device, StreamHandle stream, const LlamaShape& shape,
                        const TokenRuns& runs, int threads, std::unique_ptr<LlamaForward>* out) {
  if (device.is_cuda()) return internal::MakeCudaLlamaForward(device, stream, shape, runs, out);
  *out = std::make_unique<CpuLlamaForward>(shape, runs, threads);
  return Status::Ok();
}

#ifndef SOLVERD_HAVE_CUDA
Status internal::MakeCudaLlamaForward(const Device&, StreamHandle, const LlamaShape&,
                                      const TokenRuns&, std::unique_ptr<LlamaForward>*) {
  return FailedPrecondition("quant: this build has no CUDA backend");
}
#endif

}  // namespace solverd::quant
