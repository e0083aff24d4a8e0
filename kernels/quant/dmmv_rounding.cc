// The dmmv method: round-to-nearest fixes each row's grid; then, per row,
// every weight may take the grid value just below or just above it, and the
// dmmv family's solver chooses among them to minimise the largest
// violation max_k |x_k . (w - q)| over the calibration inputs, starting
// from round to nearest. All rows of a layer are instances of one batched
// dmmv problem sharing X.
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

dmmv::Problem BuildProblem(const Layer& layer, const QuantizedLayer& rtn,
                           std::vector<int>* floor_codes) {
  const int64_t rows = layer.rows, cols = layer.cols, tokens = layer.tokens;
  const int64_t groups = GroupCount(cols, rtn.group_size);
  dmmv::Problem p;
  p.rows = tokens;
  p.cols = cols;
  p.x.assign(layer.inputs.begin(), layer.inputs.end());
  p.instances.resize(static_cast<size_t>(rows));
  floor_codes->resize(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    dmmv::Instance& inst = p.instances[r];
    inst.b.assign(static_cast<size_t>(tokens), 0.0);
    const float* w = &layer.weights[r * cols];
    for (int64_t t = 0; t < tokens; ++t) {
      const float* x = &layer.inputs[t * cols];
      double s = 0;
      for (int64_t c = 0; c < cols; ++c) s += static_cast<double>(x[c]) * w[c];
      inst.b[t] = s;
    }
    inst.levels.resize(static_cast<size_t>(cols));
    inst.start_levels.resize(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c) {
      const Grid g = GridAt(rtn, r * groups + c / rtn.group_size, rtn.bits);
      const int lo = FloorCode(w[c], g);
      (*floor_codes)[r * cols + c] = lo;
      // Grid values are exact in float and double (fp16 scale times a
      // small integer), so lo + step * 1 is exactly the next grid value.
      dmmv::Levels& levels = inst.levels[c];
      levels.lo = Dequantize(lo, g);
      levels.step = g.scale;
      levels.count = lo < g.maxq ? 2 : 1;
      inst.start_levels[c] = rtn.codes[r * cols + c] - lo;
    }
  }
  return p;
}

}  // namespace

Status DmmvRounding(const Device& device, StreamHandle stream, const Layer& layer,
                    const Options& options, const CancelToken* cancel, QuantizedLayer* out) {
  SOLVERD_RETURN_IF_ERROR(RtnCpu(layer, options, out));
  std::vector<int> floor_codes;
  const dmmv::Problem problem = BuildProblem(layer, *out, &floor_codes);
  dmmv::Options dmmv_options;
  dmmv_options.max_outer_iterations = options.dmmv_outer_iterations;
  dmmv_options.time_limit_seconds = options.dmmv_time_limit_seconds;
  dmmv_options.threads = options.threads;
  dmmv::Result result;
  const Status s =
      dmmv::Solve(device, stream, problem, dmmv_options, nullptr, cancel, &result);
  if (!s.ok()) return s;
  const int64_t cols = layer.cols;
  for (int64_t r = 0; r < layer.rows; ++r) {
    const std::vector<int64_t>& chosen = result.instances[r].level_indices;
    for (int64_t c = 0; c < cols; ++c) {
      out->codes[r * cols + c] = static_cast<uint8_t>(floor_codes[r * cols + c] + chosen[c]);
    }
  }
  DequantizeGrid(layer.rows, cols, options.threads, out);
  return Status::Ok();
}

}  // namespace solverd::quant::internal
