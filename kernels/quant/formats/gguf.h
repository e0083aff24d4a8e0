// Pieces of the GGUF v3 format (llama.cpp's) shared by its writers: ggml's
// tensor type numbers and a builder of typed metadata (key, value type,
// value; arrays with their element type and count), little-endian as ggml
// reads it. Internal to kernels/quant. Thread-compatible.
#ifndef SOLVERD_KERNELS_QUANT_FORMATS_GGUF_H_
#define SOLVERD_KERNELS_QUANT_FORMATS_GGUF_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace solverd::quant::internal {

// ggml's tensor types.
enum GgmlType : uint32_t {
  kGgmlF32 = 0, kGgmlF16 = 1, kGgmlQ4_0 = 2, kGgmlQ8_0 = 8, kGgmlQ4_K = 12, kGgmlQ5_K = 13,
  kGgmlQ6_K = 14, kGgmlI8 = 24, kGgmlI16 = 25, kGgmlI32 = 26, kGgmlI64 = 27, kGgmlF64 = 28,
  kGgmlBF16 = 30
};

template <typename T>
void PutLittleEndian(T value, std::string* out) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));  // little-endian hosts only, as ggml
  out->append(bytes, sizeof(T));
}

// A length-prefixed GGUF string.
inline void PutGgufString(std::string_view s, std::string* out) {
  PutLittleEndian<uint64_t>(s.size(), out);
  out->append(s);
}

class GgufMetadata {
 public:
  void String(std::string_view key, std::string_view value);
  void Uint32(std::string_view key, uint32_t value);
  void Float32(std::string_view key, float value);
  void Bool(std::string_view key, bool value);
  void StringArray(std::string_view key, const std::vector<std::string>& values);
  void Float32Array(std::string_view key, const std::vector<float>& values);
  void Int32Array(std::string_view key, const std::vector<int32_t>& values);

  uint64_t count() const { return count_; }
  const std::string& bytes() const { return bytes_; }

 private:
  // GGUF's value types.
  enum : uint32_t { kUint32 = 4, kInt32 = 5, kFloat32 = 6, kBool = 7, kString = 8, kArray = 9 };
  void Key(std::string_view key, uint32_t type);

  uint64_t count_ = 0;
  std::string bytes_;
};

}  // namespace solverd::quant::internal

#endif  // SOLVERD_KERNELS_QUANT_FORMATS_GGUF_H_
