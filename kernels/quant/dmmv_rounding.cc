// The dmmv method: GPTQ first (its grids and codes); then, per row, every
// weight may take any code from GPTQ's to the two grid values around the
// float weight, and the dmmv family's solver chooses among them to
// minimise the largest violation max_k |x_k . (w - q)| over the
// calibration inputs (ties by the L2 of those violations), starting from
// GPTQ's codes, so it can only lower the t GPTQ leaves. All rows of a
// layer are instances of one batched dmmv problem sharing X. It used to
// start from round to nearest: 16x GPTQ's time on the test LM for a worse
// perplexity.
#include <algorithm>
#include <chrono>
#include <cmath>

#include "dmmv/dmmv.h"
#include "quant/quant_backend.h"

namespace solverd::quant::internal {
namespace {

// The lower of the two grid codes around w (for a w beyond the grid, the
// code at its end).
int FloorCode(float w, const Grid& g) {
  return static_cast<int>(Clamp(floorf(w / g.scale) + g.zero, 0, static_cast<float>(g.maxq)));
}

dmmv::Problem BuildProblem(const Layer& layer, const QuantizedLayer& gptq,
                           std::vector<int>* lowest_codes) {
  const int64_t rows = layer.rows, cols = layer.cols, tokens = layer.tokens;
  const int64_t groups = GroupCount(cols, gptq.group_size);
  dmmv::Problem p;
  p.rows = tokens;
  p.cols = cols;
  p.x.assign(layer.inputs.begin(), layer.inputs.end());
  p.instances.resize(static_cast<size_t>(rows));
  lowest_codes->resize(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    // The variables are the rounding errors q - w, so b = 0: no X w to form
    // (it cost as much as the search's first pass), and no cancellation.
    dmmv::Instance& inst = p.instances[r];
    inst.b.assign(static_cast<size_t>(tokens), 0.0);
    const float* w = &layer.weights[r * cols];
    inst.levels.resize(static_cast<size_t>(cols));
    inst.start_levels.resize(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c) {
      const Grid g = GridAt(gptq, r * groups + c / gptq.group_size, gptq.bits);
      const int floor_code = FloorCode(w[c], g), start = gptq.codes[r * cols + c];
      const int lo = std::min(floor_code, start);
      const int hi = std::max(std::min(floor_code + 1, g.maxq), start);
      (*lowest_codes)[r * cols + c] = lo;
      // Codes come back from level indices (lo + index), never from values.
      dmmv::Levels& levels = inst.levels[c];
      levels.lo = static_cast<double>(Dequantize(lo, g)) - w[c];
      levels.step = g.scale;
      levels.count = hi - lo + 1;
      inst.start_levels[c] = start - lo;
    }
  }
  return p;
}

}  // namespace

Status DmmvRounding(const Device& device, StreamHandle stream, const Layer& layer,
                    const Options& options, const CancelToken* cancel, QuantizedLayer* out) {
  Options gptq = options;
  gptq.method = Method::kGptq;
  const auto gptq_start = std::chrono::steady_clock::now();
  SOLVERD_RETURN_IF_ERROR(QuantizeLayer(device, stream, layer, gptq, cancel, out));
  const double gptq_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - gptq_start).count();
  std::vector<int> lowest_codes;
  const dmmv::Problem problem = BuildProblem(layer, *out, &lowest_codes);
  dmmv::Options dmmv_options;
  dmmv_options.max_outer_iterations = options.dmmv_outer_iterations;
  dmmv_options.time_limit_seconds = options.dmmv_time_limit_seconds > 0
                                        ? options.dmmv_time_limit_seconds
                                        : kDmmvBudgetOverGptq * gptq_seconds;
  dmmv_options.threads = options.threads;
  dmmv::Result result;
  const Status s =
      dmmv::Solve(device, stream, problem, dmmv_options, nullptr, cancel, &result);
  if (!s.ok()) return s;
  const int64_t cols = layer.cols;
  for (int64_t r = 0; r < layer.rows; ++r) {
    const std::vector<int64_t>& chosen = result.instances[r].level_indices;
    for (int64_t c = 0; c < cols; ++c) {
      out->codes[r * cols + c] = static_cast<uint8_t>(lowest_codes[r * cols + c] + chosen[c]);
    }
  }
  DequantizeGrid(layer.rows, cols, options.threads, out);
  return Status::Ok();
}

}  // namespace solverd::quant::internal
