#include "quant/calibration.h"

#include <cstring>
#include <vector>

#include "quant/formats/json.h"
#include "quant/gptq_hessian.h"
#include "quant/model.h"

namespace solverd::quant {
namespace {

// Whether `name` is "P.{a,b,...}<suffix>" with P = `prefix` and `last`
// among a, b, ...
bool SharedEntryServes(std::string_view name, std::string_view prefix, std::string_view last,
                       std::string_view suffix) {
  if (!name.ends_with(suffix)) return false;
  name.remove_suffix(suffix.size());
  if (name.size() < prefix.size() + 3 || !name.starts_with(prefix) ||
      name.substr(prefix.size(), 2) != ".{" || name.back() != '}') {
    return false;
  }
  std::string_view list = name.substr(prefix.size() + 2, name.size() - prefix.size() - 3);
  while (!list.empty()) {
    const size_t comma = list.find(',');
    if (list.substr(0, comma) == last) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

// The entry `layer + suffix`, else a shared one that lists the layer; the
// base name it was found under in *base.
const TensorEntry* FindEntry(const SafetensorsFile& file, std::string_view layer,
                             std::string_view suffix, std::string* base) {
  *base = std::string(layer);
  if (const TensorEntry* own = file.Find(*base + std::string(suffix))) return own;
  const size_t dot = layer.rfind('.');
  const std::string_view prefix = dot == std::string_view::npos ? "" : layer.substr(0, dot);
  const std::string_view last = dot == std::string_view::npos ? layer : layer.substr(dot + 1);
  if (prefix.empty()) return nullptr;
  for (const TensorEntry& t : file.tensors) {
    if (SharedEntryServes(t.name, prefix, last, suffix)) {
      *base = t.name.substr(0, t.name.size() - suffix.size());
      return &t;
    }
  }
  return nullptr;
}

bool IsCountType(DType d) { return d == DType::kI32 || d == DType::kI64; }

// The count in a tokens entry (REQUIRES: checked as one integer).
int64_t ReadCount(const SafetensorsFile& file, const TensorEntry& t) {
  const std::string_view bytes = file.Bytes(t);
  if (t.dtype == DType::kI32) {
    int32_t v;
    std::memcpy(&v, bytes.data(), 4);
    return v;
  }
  int64_t v;
  std::memcpy(&v, bytes.data(), 8);
  return v;
}

Status Bad(const TensorEntry& t, const std::string& what) {
  return InvalidArgument("calibration: tensor " + JsonQuote(t.name) + " " + what);
}

}  // namespace

int64_t CalibrationEntries::HeldRows() const {
  int64_t rows = inputs != nullptr ? inputs->shape[0] : 0;
  if (hessian != nullptr) rows += hessian->shape[0];
  return rows;
}

CalibrationEntries FindCalibration(const SafetensorsFile& file, std::string_view layer) {
  CalibrationEntries out;
  std::string base;
  out.inputs = FindEntry(file, layer, ".inputs", &base);
  out.hessian = FindEntry(file, layer, ".hessian", &base);
  if (out.hessian != nullptr) {
    out.tokens = file.Find(base + ".tokens");
    out.drift = file.Find(base + ".drift");
  }
  return out;
}

Status CheckCalibration(const CalibrationEntries& entries, const TensorEntry& weight,
                        Method method) {
  const int64_t in = weight.shape[1];
  const std::string layer = LayerName(weight.name);
  if (const TensorEntry* x = entries.inputs) {
    if (!IsFloat(x->dtype) || x->shape.size() != 2 || x->shape[1] != in || x->shape[0] < 1) {
      return Bad(*x, "must be a float [tokens, " + std::to_string(in) + "] matrix");
    }
  }
  if (const TensorEntry* h = entries.hessian) {
    if ((h->dtype != DType::kF32 && h->dtype != DType::kF64) || h->shape.size() != 2 ||
        h->shape[0] != in || h->shape[1] != in) {
      return Bad(*h, "must be an F32 or F64 [" + std::to_string(in) + ", " +
                         std::to_string(in) + "] matrix, the sum of x x^T of " +
                         JsonQuote(weight.name) + "'s inputs");
    }
    const std::string count = h->name.substr(0, h->name.size() - 8) + ".tokens";
    if (entries.tokens == nullptr) {
      return Bad(*h, "needs its count of tokens, an integer tensor " + JsonQuote(count));
    }
    const TensorEntry& t = *entries.tokens;
    if (!IsCountType(t.dtype) || t.elements() != 1 || t.shape.size() > 1) {
      return Bad(t, "must be one integer (I32 or I64, shape [] or [1]): the tokens " +
                        JsonQuote(h->name) + " sums over");
    }
  }
  if (const TensorEntry* d = entries.drift) {
    if ((d->dtype != DType::kF32 && d->dtype != DType::kF64) || d->shape.size() != 2 ||
        d->shape[0] != in || d->shape[1] != in) {
      return Bad(*d, "must be an F32 or F64 [" + std::to_string(in) + ", " +
                         std::to_string(in) + "] matrix, the sum of x (r - x)^T beside " +
                         JsonQuote(entries.hessian->name));
    }
  }
  if (method == Method::kDmmv && entries.inputs == nullptr) {
    return InvalidArgument("calibration: method dmmv needs rows of inputs, tensor " +
                           JsonQuote(layer + ".inputs") + " for " + JsonQuote(weight.name) +
                           " (with a Hessian, a sample of rows is enough)");
  }
  if (NeedsCalibration(method) && entries.empty()) {
    return InvalidArgument(std::string("calibration: method ") + MethodName(method) +
                           " needs tensor " + JsonQuote(layer + ".inputs") + " or " +
                           JsonQuote(layer + ".hessian") + " for " + JsonQuote(weight.name));
  }
  return Status::Ok();
}

namespace {

// An F32 or F64 entry's values as doubles.
void ReadDoubles(const SafetensorsFile& file, const TensorEntry& t, std::vector<double>* out) {
  const std::string_view bytes = file.Bytes(t);
  const size_t n = static_cast<size_t>(t.elements());
  out->resize(n);
  if (t.dtype == DType::kF64) {
    std::memcpy(out->data(), bytes.data(), n * sizeof(double));
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    float v;
    std::memcpy(&v, bytes.data() + 4 * i, 4);
    (*out)[i] = v;
  }
}

}  // namespace

Status LoadCalibration(const SafetensorsFile& file, const CalibrationEntries& entries,
                       const Options& options, Layer* layer) {
  layer->tokens = 0;
  layer->inputs.clear();
  layer->hessian.clear();
  layer->hessian_tokens = 0;
  if (entries.inputs != nullptr) {
    layer->tokens = entries.inputs->shape[0];
    SOLVERD_RETURN_IF_ERROR(ReadFloats(file, *entries.inputs, &layer->inputs));
  }
  if (entries.hessian == nullptr) return Status::Ok();
  ReadDoubles(file, *entries.hessian, &layer->hessian);
  layer->hessian_tokens = ReadCount(file, *entries.tokens);
  Status s = ValidateHessian(*layer);
  if (s.ok() && entries.drift != nullptr && options.method == Method::kGptq) {
    std::vector<double> drift;
    ReadDoubles(file, *entries.drift, &drift);
    s = internal::TowardReferenceOutputs(layer->hessian, drift, options.damp, layer->rows,
                                         layer->cols, options.threads, &layer->weights);
  }
  if (s.ok()) return s;
  return InvalidArgument("calibration: tensor " + JsonQuote(entries.hessian->name) + ": " +
                         s.message());
}

}  // namespace solverd::quant
