// Conversion of API Tensors (inline values, raw bytes or a blob) to dense
// float64 arrays for the kernels. Every error is INVALID_ARGUMENT (NOT_FOUND
// for an unknown blob) naming the tensor's field path.
// Stateless functions, safe from any thread.
#ifndef SOLVERD_SERVER_TENSOR_CONVERT_H_
#define SOLVERD_SERVER_TENSOR_CONVERT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/status/statusor.h"
#include "server/blob_store.h"
#include "solverd/v1/common.pb.h"

namespace solverd::server {

struct DenseTensor {
  std::vector<int64_t> shape;
  std::vector<double> values;  // row-major
};

// True when the tensor carries no data at all (an unset optional input).
bool IsEmptyTensor(const v1::Tensor& tensor);

// Decodes `tensor`, whose rank must be `rank`; a rank-1 tensor of inline
// values may leave its shape out. `field` prefixes error messages.
absl::StatusOr<DenseTensor> ToDense(const v1::Tensor& tensor, int rank,
                                    absl::string_view field, const BlobStore& blobs);

// `values` as the API's raw bytes fields carry them: little-endian, as
// solverd's hosts are (see tensor_convert.cc), so the bytes as they lie.
template <typename T>
std::string RawBytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_TENSOR_CONVERT_H_
