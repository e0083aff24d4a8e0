#include "quant/formats/gguf.h"

namespace solverd::quant::internal {

void GgufMetadata::Key(std::string_view key, uint32_t type) {
  ++count_;
  PutGgufString(key, &bytes_);
  PutLittleEndian<uint32_t>(type, &bytes_);
}

void GgufMetadata::String(std::string_view key, std::string_view value) {
  Key(key, kString);
  PutGgufString(value, &bytes_);
}

void GgufMetadata::Uint32(std::string_view key, uint32_t value) {
  Key(key, kUint32);
  PutLittleEndian(value, &bytes_);
}

void GgufMetadata::Float32(std::string_view key, float value) {
  Key(key, kFloat32);
  PutLittleEndian(value, &bytes_);
}

void GgufMetadata::Bool(std::string_view key, bool value) {
  Key(key, kBool);
  PutLittleEndian<uint8_t>(value ? 1 : 0, &bytes_);
}

void GgufMetadata::StringArray(std::string_view key, const std::vector<std::string>& values) {
  Key(key, kArray);
  PutLittleEndian<uint32_t>(kString, &bytes_);
  PutLittleEndian<uint64_t>(values.size(), &bytes_);
  for (const std::string& v : values) PutGgufString(v, &bytes_);
}

void GgufMetadata::Float32Array(std::string_view key, const std::vector<float>& values) {
  Key(key, kArray);
  PutLittleEndian<uint32_t>(kFloat32, &bytes_);
  PutLittleEndian<uint64_t>(values.size(), &bytes_);
  for (const float v : values) PutLittleEndian(v, &bytes_);
}

void GgufMetadata::Int32Array(std::string_view key, const std::vector<int32_t>& values) {
  Key(key, kArray);
  PutLittleEndian<uint32_t>(kInt32, &bytes_);
  PutLittleEndian<uint64_t>(values.size(), &bytes_);
  for (const int32_t v : values) PutLittleEndian(v, &bytes_);
}

}  // namespace solverd::quant::internal
