// Post-training quantization of one weight matrix (a "layer"): W is
// rows x cols (out_features x in_features, row-major, as safetensors stores
// linear layers), optionally with calibration inputs X (tokens x cols).
//
// Methods:
//  - kRtn: round to nearest on a uniform grid per group of `group_size`
//    columns of a row (or per row), symmetric or asymmetric, optionally
//    searching for the range shrink with the least squared error.
//  - kGptq: GPTQ (Frantar et al., 2023): H = 2 X^T X / tokens, damped,
//    column-by-column rounding with error feedback through the Cholesky
//    factor of H^-1, in blocks; optional act-order (with static groups, so
//    group g always covers columns [g*G, (g+1)*G)).
//  - kDmmv: GPTQ, then per row each weight takes a code between GPTQ's and
//    the grid values around it, chosen by the dmmv family's solver to make
//    max_k |x_k . (w - q)| over the calibration inputs smallest, starting
//    from GPTQ's codes; then every row's output error is lowered by single
//    code moves that keep the largest violation reached.
//  - kNf4, kInt8Blockwise: absmax per block of `group_size` consecutive
//    weights (row-major), each weight the nearest entry of a code book in
//    [-1, 1] (NF4's 16 normal quantiles; 255 evenly spaced int8 values),
//    optionally with the absmax values themselves quantized (double quant).
//  - kHqq: half-quadratic quantization (Badri and Shaji, 2023), needing no
//    calibration data: each group's scale from its range, its zero point
//    (a real number) optimized against a sparsity-promoting l_p error
//    (hqq_math.h). Asymmetric only.
//
// Scales and zero points are rounded to fp16 before the weights are
// rounded, so the reported error is that of the stored model. CPU and CUDA
// backends compute the same codes. Thread-compatible.
#ifndef SOLVERD_KERNELS_QUANT_QUANT_H_
#define SOLVERD_KERNELS_QUANT_QUANT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/cancel_token.h"
#include "common/device.h"
#include "common/status.h"

namespace solverd::quant {

enum class Method { kRtn, kGptq, kDmmv, kNf4, kInt8Blockwise, kHqq };

// "rtn", "gptq", "dmmv", "nf4", "int8-blockwise", "hqq".
const char* MethodName(Method method);
// The method called `name`; false for none.
bool MethodFromName(std::string_view name, Method* method);
bool IsBlockwise(Method method);
bool NeedsCalibration(Method method);   // gptq, dmmv

// dmmv's default budget per layer for the min-max search after GPTQ
// (its setup included; the output error polish after it is not timed), in
// units of one pass over the layer's products X (Q - W)^T on the
// calibration inputs, which the method times on each layer. At 6 the
// method took 3.0-3.3x GPTQ's time on the test LM with the polish; at 4
// its largest violation came within 0.005 of 0.8x GPTQ's.
inline constexpr double kDmmvBudgetInPasses = 4.5;

struct Options {
  Method method = Method::kRtn;
  int bits = 4;                   // 2..8; nf4 is always 4, int8-blockwise 8
  int64_t group_size = 128;       // grid: columns per scale (0: whole row);
                                  // blockwise: weights per absmax block
  bool symmetric = false;         // grid methods
  bool clip_search = false;       // grid methods: search the range shrink
  double damp = 0.01;             // gptq: damping, a share of mean(diag H)
  bool act_order = false;         // gptq: columns by decreasing diag(H)
  int64_t gptq_block = 128;       // gptq: columns per lazy-update block
  bool double_quant = false;      // blockwise: quantize the absmax values
  int64_t dmmv_outer_iterations = 20;  // dmmv: LNS rounds per layer
  // dmmv: the wall time per layer after GPTQ (setup, searches, polish;
  // the last search round may run past it); 0: kDmmvBudgetInPasses.
  double dmmv_time_limit_seconds = 0;
  int64_t hqq_iterations = 20;    // hqq: zero-point rounds per group
  // rtn, gptq: llama.cpp's K-quant grids (kquant_math.h) instead of
  // per-group ones: bits 4, 5, 6 are Q4_K, Q5_K, Q6_K; group_size and
  // symmetric are then theirs (32 / 16 columns), and cols a multiple of 256.
  bool k_quant = false;
  int threads = 1;                // CPU backend
};

// The grid size for a method: 4 for nf4, 8 for int8-blockwise, else bits.
int EffectiveBits(const Options& options);

struct Layer {
  int64_t rows = 0, cols = 0;
  std::vector<float> weights;  // rows x cols
  int64_t tokens = 0;
  std::vector<float> inputs;   // tokens x cols; empty: no calibration data
  // The calibration as sum_k x_k x_k^T over `hessian_tokens` inputs (cols x
  // cols, symmetric), or empty. When given, GPTQ and the output error use
  // it, and `inputs` (if any) is a sample of rows for dmmv and the largest
  // violation.
  std::vector<double> hessian;
  int64_t hessian_tokens = 0;

  bool calibrated() const { return tokens > 0 || !hessian.empty(); }
};

// The quantized form of a layer. Grid methods: w ~ scale * (code - zero)
// with scale and zero per (row, group); zero is an integer except for hqq.
// Blockwise: w ~ absmax * book[code] per block.
struct QuantizedLayer {
  int bits = 0;
  int64_t group_size = 0;             // as used (grid: cols when per row)
  std::vector<uint8_t> codes;         // rows x cols
  std::vector<float> scales, zeros;   // grid: rows x groups (fp16 values)
  // K-quants: each group's offset (Grid::offset), and per row and
  // super-block of 256 columns the fp16 d and dmin its groups' integer
  // scales and mins multiply (scale = d sc, offset = dmin m exactly).
  std::vector<float> offsets;
  std::vector<float> super_scales, super_mins;
  std::vector<float> absmax;          // blockwise: per block (as dequantized)
  std::vector<float> codebook;        // blockwise: 2^bits entries, ascending
  // Double quant: absmax[b] = absmax_offset + absmax_scales[b / 256] *
  // (absmax_codes[b] - 128)... see blockwise.h.
  std::vector<uint8_t> absmax_codes;
  std::vector<float> absmax_scales;
  float absmax_offset = 0;
  std::vector<float> dequantized;     // rows x cols

  // Empties the layer but keeps its buffers' capacity: a model's layers
  // reuse them, since on large layers touching fresh pages costs more than
  // round to nearest itself.
  void Reset();
};

// Errors of a quantized layer against the original.
struct LayerReport {
  double weight_mse = 0;
  double max_abs_error = 0;
  // ||(W - Q) X^T||_F / ||W X^T||_F, X the calibration inputs (or the
  // Gaussian stand-in when there are none).
  double relative_output_error = 0;
  // max_k |x_k . (w_r - q_r)| over rows r and inputs k: the DMMV objective.
  double max_violation = 0;
  double output_error_squared = 0;  // ||(W - Q) X^T||_F^2
  double seconds = 0;
};

// INVALID_ARGUMENT naming the option or the layer's shape problem.
Status ValidateOptions(const Options& options);
Status ValidateLayer(const Layer& layer, const Options& options);
// The Hessian's shape and count, and what a sum of x x^T must satisfy:
// finite, symmetric and every 2 x 2 principal minor >= 0 (|H[i][j]| <=
// sqrt(H[i][i] H[j][j])), to a relative 1e-5 for float32 rounding.
// The message says which entry is not ("hessian: not symmetric at [i][j]").
Status ValidateHessian(const Layer& layer);

// Quantizes `layer` on `device`. A cancel returns CANCELLED.
Status QuantizeLayer(const Device& device, StreamHandle stream, const Layer& layer,
                     const Options& options, const CancelToken* cancel, QuantizedLayer* out);

// Fills the error figures of `report` (not seconds). The output error is
// taken from the layer's Hessian when it has one (all the tokens it sums),
// else from its inputs; the largest violation from its inputs. Without
// inputs, a seeded Gaussian stand-in takes their place.
void MeasureLayer(const Layer& layer, const QuantizedLayer& quantized, int threads,
                  LayerReport* report);

// Device memory QuantizeLayer needs for a layer of this shape.
int64_t MemoryBytes(int64_t rows, int64_t cols, int64_t tokens, const Options& options);

}  // namespace solverd::quant

#endif  // SOLVERD_KERNELS_QUANT_QUANT_H_
