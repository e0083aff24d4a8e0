// A layer's calibration in a calibration safetensors file. For the weight
// `L.weight` [out, in] the file may hold
//   L.inputs   float [rows, in]   inputs x_k as rows (all of them, or a
//                                 sample when a Hessian is given too)
//   L.hessian  F32/F64 [in, in]   sum_k x_k x_k^T over the tokens seen
//   L.tokens   integer [] or [1]  how many tokens the Hessian sums
//   L.drift    F32/F64 [in, in]   optional, with a Hessian: sum_k x_k
//                                 (r_k - x_k)^T, r_k the input a reference
//                                 model gives for the same token; GPTQ then
//                                 rounds toward the reference's outputs
//                                 (TowardReferenceOutputs, gptq_hessian.h).
//                                 Sequential calibration writes it.
// Layers that read the same input (a block's q/k/v projections, its MLP's
// gate and up) may share entries named with a brace list of their last
// name components: `P.{q_proj,k_proj,v_proj}.hessian` serves
// `P.q_proj.weight`, `P.k_proj.weight` and `P.v_proj.weight`. A layer's
// own entry wins over a shared one. The Hessian and its count come from
// the same name, and so does the drift. Stateless functions, safe from any
// thread.
#ifndef SOLVERD_KERNELS_QUANT_CALIBRATION_H_
#define SOLVERD_KERNELS_QUANT_CALIBRATION_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "quant/formats/safetensors.h"
#include "quant/quant.h"

namespace solverd::quant {

struct CalibrationEntries {
  const TensorEntry* inputs = nullptr;
  const TensorEntry* hessian = nullptr;
  const TensorEntry* tokens = nullptr;  // the Hessian's count
  const TensorEntry* drift = nullptr;   // beside the Hessian, if any

  bool empty() const { return inputs == nullptr && hessian == nullptr; }
  // Rows the layer's quantization holds for its calibration: the inputs,
  // or a Hessian's cols x cols doubles counted in rows of `cols` doubles.
  int64_t HeldRows() const;
};

// The entries of layer `layer` (a weight's name without ".weight").
CalibrationEntries FindCalibration(const SafetensorsFile& file, std::string_view layer);

// INVALID_ARGUMENT ("calibration: tensor ... must be ...") unless the
// entries fit `weight` [out, in] and `method` has what it needs.
Status CheckCalibration(const CalibrationEntries& entries, const TensorEntry& weight,
                        Method method);

// Reads the entries into layer->inputs / tokens and layer->hessian /
// hessian_tokens (empty when absent), and checks the Hessian
// (ValidateHessian, naming its tensor). With a drift and method GPTQ, the
// layer's weights (already read) are moved toward the reference outputs.
// REQUIRES: CheckCalibration() passed.
Status LoadCalibration(const SafetensorsFile& file, const CalibrationEntries& entries,
                       const Options& options, Layer* layer);

}  // namespace solverd::quant

#endif  // SOLVERD_KERNELS_QUANT_CALIBRATION_H_
