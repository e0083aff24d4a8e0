// The safetensors file format (huggingface/safetensors): an 8-byte
// little-endian header length N, N bytes of JSON mapping each tensor name to
// {dtype, shape, data_offsets: [begin, end)} (offsets into the data that
// follows) plus an optional "__metadata__" object of strings, then the data.
//
// ParseSafetensors() validates the whole file before anything reads it: the
// header length is bounded and inside the file, the JSON is well formed,
// every dtype is known, shape and byte length agree, and the tensors tile
// the data exactly (no overlaps, no holes, nothing after the last). Errors
// are INVALID_ARGUMENT naming the tensor. A parsed file refers to the bytes
// it was parsed from, which must outlive it. SafetensorsWriter builds a file
// in memory or on disk. Both are thread-compatible.
#ifndef SOLVERD_KERNELS_QUANT_FORMATS_SAFETENSORS_H_
#define SOLVERD_KERNELS_QUANT_FORMATS_SAFETENSORS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "quant/formats/byte_sink.h"

#include "common/status.h"

namespace solverd::quant {

enum class DType { kBool, kU8, kI8, kF8E5M2, kF8E4M3, kI16, kU16, kF16, kBF16,
                   kI32, kU32, kF32, kF64, kI64, kU64 };

int DTypeSize(DType dtype);          // bytes per element
const char* DTypeName(DType dtype);  // "F32", as the format spells it
bool DTypeFromName(std::string_view name, DType* out);
bool IsFloat(DType dtype);           // F16, BF16, F32, F64: what ReadFloats reads

struct TensorEntry {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  int64_t begin = 0, end = 0;  // byte range within its shard's data section
  int shard = 0;               // which file of a sharded checkpoint holds it
  int64_t elements() const;
};

// One parsed file, or the shards of a checkpoint merged (checkpoint.h).
struct SafetensorsFile {
  std::vector<TensorEntry> tensors;  // in shard, then data order
  std::vector<std::pair<std::string, std::string>> metadata;
  std::vector<std::string_view> shards;  // each file's data section

  // The entry named `name`, or nullptr.
  const TensorEntry* Find(std::string_view name) const;
  std::string_view Bytes(const TensorEntry& tensor) const {
    return shards[static_cast<size_t>(tensor.shard)].substr(
        static_cast<size_t>(tensor.begin), static_cast<size_t>(tensor.end - tensor.begin));
  }
};

// Headers larger than this are refused (the reference reader's bound).
inline constexpr int64_t kMaxHeaderBytes = int64_t{100} << 20;

Status ParseSafetensors(std::string_view bytes, SafetensorsFile* out);

// Converts a float tensor (IsFloat) to float32 values; F64 rounds.
Status ReadFloats(const SafetensorsFile& file, const TensorEntry& tensor, std::vector<float>* out);
// The same for `bytes` holding `n` elements of `dtype`. REQUIRES: IsFloat(dtype).
void FloatsFromBytes(DType dtype, std::string_view bytes, int64_t n, std::vector<float>* out);

// A tensor as a header lists it: its data is `bytes` long.
struct TensorLayout {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  int64_t bytes = 0;
};

// The start of a safetensors file whose data is `tensors`' bytes in order:
// the 8-byte length and the JSON header, padded with spaces to a multiple
// of 8 bytes so that the data is aligned for readers that map it.
std::string SafetensorsHeader(const std::vector<TensorLayout>& tensors,
                              const std::vector<std::pair<std::string, std::string>>& metadata);

class SafetensorsWriter {
 public:
  // Tensor data waits in memory for the header, or from now on (REQUIRES:
  // nothing added yet) in a file in `dir` (byte_sink.h).
  Status SpillTo(const std::string& dir) { return data_.UseFileIn(dir); }
  // REQUIRES: bytes.size() == DTypeSize(dtype) * product(shape); names unique.
  void Add(std::string name, DType dtype, std::vector<int64_t> shape, std::string_view bytes);
  void AddMetadata(std::string key, std::string value);
  // The file, written to `out` (or returned); empties the writer.
  Status Finish(internal::ByteSink* out);
  std::string Finish();

  // What has been added: the tensors in order, their data back to back.
  const std::vector<TensorLayout>& tensors() const { return tensors_; }
  internal::Spill* data() { return &data_; }

 private:
  std::vector<TensorLayout> tensors_;
  std::vector<std::pair<std::string, std::string>> metadata_;
  internal::Spill data_;
};

// Little-endian byte helpers for building tensors.
std::string FloatsToBytes(const std::vector<float>& values);
std::string HalvesToBytes(const std::vector<float>& values);  // rounds to fp16

}  // namespace solverd::quant

#endif  // SOLVERD_KERNELS_QUANT_FORMATS_SAFETENSORS_H_
