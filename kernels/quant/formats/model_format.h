// How one quantized layer is laid out in solverd's quantized safetensors
// files (see model.h): writing its tensors and metadata, and reading them
// back. Internal to kernels/quant.
// Stateless functions, safe from any thread.
#ifndef SOLVERD_KERNELS_QUANT_FORMATS_MODEL_FORMAT_H_
#define SOLVERD_KERNELS_QUANT_FORMATS_MODEL_FORMAT_H_

#include <cstdint>
#include <string>

#include "quant/quant.h"
#include "quant/formats/safetensors.h"

namespace solverd::quant::internal {

inline constexpr char kLayerMetadataPrefix[] = "solverd.layer.";

struct LayerDescription {
  std::string layer;   // L
  std::string source;  // the source tensor's name
  DType source_dtype = DType::kF32;
  int64_t rows = 0, cols = 0;
  Method method = Method::kRtn;
  int bits = 0;
  int64_t group_size = 0;
  bool symmetric = false;
  bool double_quant = false;
  bool k_quant = false;  // gguf only: the layer is on K-quant grids
};

// The names of the tensors a layer adds, for collision checks.
std::vector<std::string> LayerTensorNames(const std::string& layer, const Options& options);

// The bytes WriteLayer() stores for a rows x cols grid layer.
int64_t GridLayerBytes(int64_t rows, int64_t cols, int bits, int64_t group_size);

// Adds the layer's tensors and metadata to `writer`; returns their bytes.
int64_t WriteLayer(const LayerDescription& d, const QuantizedLayer& q, SafetensorsWriter* writer);

// Reads layer `d` back to its dequantized weights (rows x cols).
Status ReadLayer(const SafetensorsFile& file, const LayerDescription& d,
                 std::vector<float>* weights);

std::string DescriptionJson(const LayerDescription& d);
Status ParseDescription(const std::string& layer, const std::string& json, LayerDescription* d);

}  // namespace solverd::quant::internal

#endif  // SOLVERD_KERNELS_QUANT_FORMATS_MODEL_FORMAT_H_
