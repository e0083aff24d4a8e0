// The files a quant job reads: its model (one safetensors file, or a
// Hugging Face checkpoint's config.json and weight shards) and its
// calibration file, from blobs or from under --data-root. Files under the
// data root, and blobs kept on disk (--state-dir), are mapped rather than
// read, so a multi-GB checkpoint is paged
// in as its layers are read instead of being held whole; shards are never
// joined into one buffer. Errors name the request field
// ("quant.model.checkpoint_path: ..."). Stateless functions, safe from any
// thread.
#ifndef SOLVERD_SERVER_FAMILIES_QUANT_MODEL_SOURCE_H_
#define SOLVERD_SERVER_FAMILIES_QUANT_MODEL_SOURCE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "quant/formats/checkpoint.h"
#include "quant/formats/safetensors.h"
#include "server/families/family.h"
#include "server/mapped_file.h"
#include "solverd/v1/quant.pb.h"

namespace solverd::server {

struct QuantModelSource {
  std::vector<std::shared_ptr<const void>> holders;  // keep `weights`' bytes valid
  ::solverd::quant::SafetensorsFile weights;         // the file, or the shards merged
  ::solverd::quant::ModelConfig config;              // model_type "" for a lone file
  std::string_view config_json;     // a checkpoint's config.json; empty for a file
  std::string_view tokenizer_json;  // a checkpoint's tokenizer.json; empty without
  // The tokenizer and generation files an output folder carries through.
  std::vector<std::pair<std::string, std::string_view>> passthrough;
  bool mapped = false;  // the weights are MappedFiles (--data-root, blobs kept on disk)
  int64_t bytes = 0;                                 // of the weight files
};

// The model of a QuantProblem (field "quant.model"), parsed; a Llama-family
// checkpoint's tensors are checked against its config.json.
absl::StatusOr<QuantModelSource> ReadQuantModel(const v1::QuantFile& file,
                                                const PrepareContext& context);

// A single file (a blob or a path), e.g. the calibration; `field` is its
// place in the request ("quant.calibration").
absl::StatusOr<HeldBytes> ReadQuantFile(const v1::QuantFile& file, const std::string& field,
                                        const PrepareContext& context);

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_FAMILIES_QUANT_MODEL_SOURCE_H_
