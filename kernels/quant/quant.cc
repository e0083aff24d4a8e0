#include "quant/quant.h"

#include <cmath>

#include "common/check_finite.h"
#include "quant/kquant_math.h"
#include "quant/quant_backend.h"

namespace solverd::quant {
namespace {

// GPTQ keeps a cols x cols float64 Hessian and its factor (16 GiB at this
// width); Llama-70B's down_proj reads 28,672 inputs.
constexpr int64_t kMaxGptqColumns = 32768;
constexpr int64_t kMaxHqqIterations = 1000;

Status QuantizeCuda(const Device& device, StreamHandle stream, const Layer& layer,
                    const Options& options, const CancelToken* cancel, QuantizedLayer* out) {
#ifdef SOLVERD_HAVE_CUDA
  switch (options.method) {
    case Method::kRtn: return internal::RtnCuda(device, stream, layer, options, out);
    case Method::kHqq: return internal::HqqCuda(device, stream, layer, options, out);
    case Method::kGptq: return internal::GptqCuda(device, stream, layer, options, cancel, out);
    default: return internal::BlockwiseCuda(device, stream, layer, options, out);
  }
#else
  (void)device, (void)stream, (void)layer, (void)options, (void)cancel, (void)out;
  return FailedPrecondition("quant: this build has no CUDA backend");
#endif
}

}  // namespace

namespace internal {

Status Gptq(const Device& device, StreamHandle stream, const Layer& layer, const Options& options,
            const CancelToken* cancel, QuantizedLayer* out, std::vector<double>* hessian) {
#ifdef SOLVERD_HAVE_CUDA
  if (device.is_cuda()) return GptqCuda(device, stream, layer, options, cancel, out, hessian);
#endif
  (void)device, (void)stream;
  return GptqCpu(layer, options, cancel, out, hessian);
}

}  // namespace internal

const char* MethodName(Method method) {
  switch (method) {
    case Method::kRtn: return "rtn";
    case Method::kGptq: return "gptq";
    case Method::kDmmv: return "dmmv";
    case Method::kNf4: return "nf4";
    case Method::kInt8Blockwise: return "int8-blockwise";
    case Method::kHqq: return "hqq";
  }
  return "?";
}

bool MethodFromName(std::string_view name, Method* method) {
  for (Method m : {Method::kRtn, Method::kGptq, Method::kDmmv, Method::kNf4,
                   Method::kInt8Blockwise, Method::kHqq}) {
    if (name == MethodName(m)) {
      *method = m;
      return true;
    }
  }
  return false;
}

bool IsBlockwise(Method method) {
  return method == Method::kNf4 || method == Method::kInt8Blockwise;
}

bool NeedsCalibration(Method method) {
  return method == Method::kGptq || method == Method::kDmmv;
}

int EffectiveBits(const Options& options) {
  if (options.method == Method::kNf4) return 4;
  if (options.method == Method::kInt8Blockwise) return 8;
  return options.bits;
}

Status ValidateOptions(const Options& o) {
  if (o.method == Method::kNf4 && o.bits != 4) return InvalidArgument("bits: nf4 is 4-bit");
  if (o.method == Method::kInt8Blockwise && o.bits != 8) {
    return InvalidArgument("bits: int8-blockwise is 8-bit");
  }
  if (o.bits < 2 || o.bits > 8) return InvalidArgument("bits: must be 2..8");
  if (o.group_size < 0) return InvalidArgument("group_size: must be non-negative");
  if (IsBlockwise(o.method) && o.group_size < 1) {
    return InvalidArgument("group_size: block-wise methods need a block size >= 1");
  }
  if (!(o.damp >= 0) || !std::isfinite(o.damp)) return InvalidArgument("damp: must be >= 0");
  if (o.gptq_block < 1) return InvalidArgument("gptq_block: must be >= 1");
  if (o.dmmv_outer_iterations < 0) {
    return InvalidArgument("dmmv_outer_iterations: must be non-negative");
  }
  if (!(o.dmmv_time_limit_seconds >= 0)) {
    return InvalidArgument("dmmv_time_limit_seconds: must be non-negative");
  }
  if (o.k_quant) {
    if (o.method != Method::kRtn && o.method != Method::kGptq) {
      return InvalidArgument(std::string("method: K-quant grids are rounded by rtn or gptq, "
                                         "not ") + MethodName(o.method));
    }
    if (o.bits < 4 || o.bits > 6) {
      return InvalidArgument("bits: K-quants are 4 (Q4_K), 5 (Q5_K) or 6 (Q6_K) bits, not " +
                             std::to_string(o.bits));
    }
  }
  if (o.method == Method::kHqq) {
    if (o.symmetric) return InvalidArgument("symmetric: hqq optimizes an asymmetric zero point");
    if (o.clip_search) return InvalidArgument("clip_search: hqq chooses its own zero point");
    if (o.hqq_iterations < 0 || o.hqq_iterations > kMaxHqqIterations) {
      return InvalidArgument("hqq_iterations: must be 0.." + std::to_string(kMaxHqqIterations));
    }
  }
  return Status::Ok();
}

Status ValidateHessian(const Layer& layer) {
  if (layer.hessian.empty()) return Status::Ok();
  const int64_t n = layer.cols;
  if (static_cast<int64_t>(layer.hessian.size()) != n * n) {
    return InvalidArgument("hessian: shape must be [" + std::to_string(n) + ", " +
                           std::to_string(n) + "]");
  }
  if (layer.hessian_tokens < 1) {
    return InvalidArgument("hessian: the count of tokens it sums over must be positive");
  }
  for (int64_t i = 0; i < n; ++i) {
    const double d = layer.hessian[i * n + i];
    if (!(d >= 0) || !std::isfinite(d)) {
      return InvalidArgument("hessian: diagonal entry " + std::to_string(i) +
                             " is negative or not finite: not a sum of x x^T");
    }
  }
  // Necessary for positive semidefiniteness, and cheap: every 2 x 2
  // principal minor is >= 0, |H[i][j]| <= sqrt(H[i][i] H[j][j]) (with
  // float32 rounding's slack); and H is symmetric to the same slack.
  constexpr double kSlack = 1e-5;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < i; ++j) {
      const double a = layer.hessian[i * n + j], b = layer.hessian[j * n + i];
      const double bound = std::sqrt(layer.hessian[i * n + i] * layer.hessian[j * n + j]);
      const bool symmetric = std::isfinite(a) && !(std::fabs(a - b) > kSlack * bound + 1e-30);
      if (symmetric && !(std::fabs(a) > bound * (1 + kSlack) + 1e-30)) continue;
      const std::string at = "[" + std::to_string(i) + "][" + std::to_string(j) + "]";
      if (!symmetric) return InvalidArgument("hessian: not symmetric at " + at);
      return InvalidArgument("hessian: not positive semidefinite: |H" + at +
                             "| exceeds sqrt(H[i][i] H[j][j])");
    }
  }
  return Status::Ok();
}

Status ValidateLayer(const Layer& layer, const Options& options) {
  if (layer.rows < 1 || layer.cols < 1) return InvalidArgument("weights: need rows, cols >= 1");
  if (static_cast<int64_t>(layer.weights.size()) != layer.rows * layer.cols) {
    return InvalidArgument("weights: size is not rows x cols");
  }
  SOLVERD_RETURN_IF_ERROR(CheckFinite(layer.weights, "weights"));
  if (static_cast<int64_t>(layer.inputs.size()) != layer.tokens * layer.cols) {
    return InvalidArgument("inputs: shape must be [tokens, " + std::to_string(layer.cols) + "]");
  }
  SOLVERD_RETURN_IF_ERROR(CheckFinite(layer.inputs, "inputs"));
  SOLVERD_RETURN_IF_ERROR(ValidateHessian(layer));
  if (options.method == Method::kDmmv && layer.tokens < 1) {
    return InvalidArgument("inputs: method dmmv needs calibration inputs (rows of x; with a "
                           "Hessian, a sample of them)");
  }
  if (NeedsCalibration(options.method) && !layer.calibrated()) {
    return InvalidArgument(std::string("inputs: method ") + MethodName(options.method) +
                           " needs calibration inputs or their Hessian");
  }
  if (options.k_quant && layer.cols % internal::kSuperBlock != 0) {
    return InvalidArgument("weights: K-quant super-blocks are 256 weights of a row, and the "
                           "rows have " + std::to_string(layer.cols));
  }
  if (NeedsCalibration(options.method) && layer.cols > kMaxGptqColumns) {  // dmmv runs gptq
    return InvalidArgument(std::string("weights: ") + MethodName(options.method) +
                           " handles at most " + std::to_string(kMaxGptqColumns) + " columns");
  }
  return Status::Ok();
}

void QuantizedLayer::Reset() {
  bits = 0;
  group_size = 0;
  absmax_offset = 0;
  for (std::vector<float>* v :
       {&scales, &zeros, &offsets, &super_scales, &super_mins, &absmax, &codebook,
        &absmax_scales, &dequantized}) {
    v->clear();
  }
  codes.clear();
  absmax_codes.clear();
}

Status QuantizeLayer(const Device& device, StreamHandle stream, const Layer& layer,
                     const Options& options, const CancelToken* cancel, QuantizedLayer* out) {
  out->Reset();
  SOLVERD_RETURN_IF_ERROR(ValidateOptions(options));
  SOLVERD_RETURN_IF_ERROR(ValidateLayer(layer, options));
  SOLVERD_RETURN_IF_ERROR(CheckCancel(cancel));
  if (options.method == Method::kDmmv) {  // the dmmv family picks its backend
    return internal::DmmvRounding(device, stream, layer, options, cancel, out);
  }
  if (device.is_cuda()) return QuantizeCuda(device, stream, layer, options, cancel, out);
  switch (options.method) {
    case Method::kRtn: return internal::RtnCpu(layer, options, out);
    case Method::kHqq: return internal::HqqCpu(layer, options, out);
    case Method::kGptq: return internal::GptqCpu(layer, options, cancel, out);
    default: return internal::BlockwiseCpu(layer, options, out);
  }
}

int64_t MemoryBytes(int64_t rows, int64_t cols, int64_t tokens, const Options& options) {
  const int64_t weights = rows * cols * (4 + 4 + 1);  // weights, dequantized, codes
  switch (options.method) {
    // H, its factor and X (a Hessian from the file counts as tokens = cols).
    case Method::kGptq: return weights + cols * cols * 8 * 2 + tokens * cols * 8;
    // GPTQ's and a copy of its H, X in double, each row's residual, and
    // for the polish the residuals in float and X by columns.
    case Method::kDmmv:
      return weights + cols * cols * 8 * 3 + tokens * cols * (8 + 4) +
             rows * tokens * (8 * 2 + 4);
    default: return weights;
  }
}

}  // namespace solverd::quant
