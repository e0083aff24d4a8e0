#include "client/demo_problems.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace solverd::client {

v1::OtProblem RandomOtProblem(const OtDemoOptions& o) {
  std::mt19937_64 rng(o.seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const int64_t m = o.m > 0 ? o.m : o.n;
  v1::OtProblem p;
  for (auto [cloud, rows] : {std::pair{p.mutable_points()->mutable_x(), o.n},
                             std::pair{p.mutable_points()->mutable_y(), m}}) {
    cloud->add_shape(rows);
    cloud->add_shape(o.dim);
    for (int64_t k = 0; k < rows * o.dim; ++k) cloud->add_values(u(rng));
  }
  p.mutable_points()->set_p(2);
  p.set_eta(o.eta);
  return p;
}

v1::SorSequence ShiftedPoissonSequence(int side, int systems, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const int n = side * side;
  v1::SorSequence sequence;
  for (int k = 0; k < systems; ++k) {
    const double shift = static_cast<double>(k) / systems;
    v1::LinearSystem& system = *sequence.add_systems();
    system.set_context(shift);
    v1::CsrMatrix& a = *system.mutable_a();
    a.set_rows(n);
    a.add_row_ptr(0);
    for (int r = 0; r < side; ++r) {
      for (int c = 0; c < side; ++c) {
        const int i = r * side + c;
        // Neighbours in increasing column order, the diagonal among them.
        for (auto [j, v] : {std::pair{i - side, -1.0}, std::pair{i - 1, -1.0},
                            std::pair{i, 4.0 + shift}, std::pair{i + 1, -1.0},
                            std::pair{i + side, -1.0}}) {
          const bool inside = (j == i - side && r > 0) || (j == i - 1 && c > 0) || j == i ||
                              (j == i + 1 && c + 1 < side) || (j == i + side && r + 1 < side);
          if (!inside) continue;
          a.add_col_idx(j);
          a.add_values(v);
        }
        a.add_row_ptr(a.values_size());
      }
    }
    system.mutable_b()->add_shape(n);
    for (int i = 0; i < n; ++i) system.mutable_b()->add_values(u(rng));
  }
  return sequence;
}

namespace {

struct F32Tensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// The safetensors layout: an 8-byte little-endian header length, the JSON
// header (padded with spaces to 8 bytes), then the tensors' bytes.
std::string SafetensorsFile(const std::vector<F32Tensor>& tensors) {
  std::vector<std::string> entries;
  size_t offset = 0;
  for (const F32Tensor& t : tensors) {
    const size_t bytes = t.values.size() * sizeof(float);
    entries.push_back(absl::StrCat("\"", t.name, "\": {\"dtype\": \"F32\", \"shape\": [",
                                   absl::StrJoin(t.shape, ", "), "], \"data_offsets\": [",
                                   offset, ", ", offset + bytes, "]}"));
    offset += bytes;
  }
  std::string header = absl::StrCat("{", absl::StrJoin(entries, ", "), "}");
  header.resize((header.size() + 7) / 8 * 8, ' ');
  std::string file(8, '\0');
  const uint64_t length = header.size();
  for (int b = 0; b < 8; ++b) file[b] = static_cast<char>((length >> (8 * b)) & 0xff);
  file += header;
  for (const F32Tensor& t : tensors) {
    file.append(reinterpret_cast<const char*>(t.values.data()), t.values.size() * sizeof(float));
  }
  return file;
}

}  // namespace

QuantDemoFiles RandomQuantModel(uint64_t seed) {
  constexpr int kWidths[] = {64, 128, 128, 64};  // in -> out of each layer
  constexpr int kTokens = 256;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<F32Tensor> weights, inputs;
  for (int k = 0; k < 3; ++k) {
    const int in = kWidths[k], out = kWidths[k + 1];
    F32Tensor w{absl::StrCat("layers.", k, ".weight"), {out, in}, {}};
    for (int i = 0; i < out * in; ++i) w.values.push_back(normal(rng) / std::sqrt(float(in)));
    F32Tensor x{absl::StrCat("layers.", k, ".inputs"), {kTokens, in}, {}};
    for (int i = 0; i < kTokens * in; ++i) x.values.push_back(normal(rng));
    weights.push_back(std::move(w));
    inputs.push_back(std::move(x));
  }
  return {SafetensorsFile(weights), SafetensorsFile(inputs)};
}

}  // namespace solverd::client
