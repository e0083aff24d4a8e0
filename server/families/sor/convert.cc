#include "server/families/sor/convert.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "server/blob_store.h"
#include "server/data_root.h"
#include "server/families/sor/matrix_market.h"
#include "server/status_util.h"
#include "server/tensor_convert.h"

namespace solverd::server {
namespace {

namespace sor = ::solverd::sor;

// Matrix Market files (blobs or --data-root files) larger than this are refused.
constexpr int64_t kMaxMatrixFileBytes = int64_t{4} << 30;

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

absl::StatusOr<sor::CsrMatrix> ConvertCsr(const v1::CsrMatrix& in, const std::string& field) {
  if (in.rows() <= 0 || in.rows() >= (int64_t{1} << 31)) {
    return Invalid(field + ".rows", "must lie in [1, 2^31)");
  }
  sor::CsrMatrix a;
  a.n = static_cast<int32_t>(in.rows());
  a.row_ptr.assign(in.row_ptr().begin(), in.row_ptr().end());
  a.col_idx.assign(in.col_idx().begin(), in.col_idx().end());
  a.values.assign(in.values().begin(), in.values().end());
  if (absl::Status s = FromKernel(sor::ValidateCsr(a, field)); !s.ok()) return s;
  return a;
}

absl::StatusOr<sor::CsrMatrix> ConvertMatrix(const v1::LinearSystem& in, const std::string& field,
                                             const PrepareContext& context) {
  switch (in.matrix_case()) {
    case v1::LinearSystem::kA: return ConvertCsr(in.a(), field + ".a");
    case v1::LinearSystem::kABlobId: {
      auto blob = context.blobs.Get(in.a_blob_id());
      if (!blob.ok()) return blob.status();
      return ParseMatrixMarket(*blob->bytes, field + ".a_blob_id");
    }
    case v1::LinearSystem::kAPath: {
      auto text = ReadUnderDataRoot(context.data_root, in.a_path(), field + ".a_path",
                                    kMaxMatrixFileBytes);
      if (!text.ok()) return text.status();
      return ParseMatrixMarket(*text, field + ".a_path");
    }
    case v1::LinearSystem::MATRIX_NOT_SET: break;
  }
  return Invalid(field, "set one of a, a_blob_id, a_path");
}

absl::Status CheckFinite(const std::vector<double>& v, absl::string_view field) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) return Invalid(field, absl::StrCat("entry ", i, " is not finite"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::vector<double>>> ConvertRhs(const v1::Tensor& in, int32_t n,
                                                            const std::string& field,
                                                            const BlobStore& blobs) {
  if (IsEmptyTensor(in)) return Invalid(field, "is required");
  auto dense = ToDense(in, in.shape_size() == 2 ? 2 : 1, field, blobs);
  if (!dense.ok()) return dense.status();
  if (absl::Status s = CheckFinite(dense->values, field); !s.ok()) return s;
  const int64_t width = dense->shape.back();
  if (width != n) return Invalid(field, absl::StrCat("has length ", width, ", the matrix has ", n, " rows"));
  std::vector<std::vector<double>> rhs;
  for (size_t k = 0; k < dense->values.size(); k += n) {
    rhs.emplace_back(dense->values.begin() + k, dense->values.begin() + k + n);
  }
  return rhs;
}

absl::StatusOr<SorSystem> ConvertSystem(const v1::LinearSystem& in, const std::string& field,
                                        const PrepareContext& context, const SorSystem* previous) {
  auto a = ConvertMatrix(in, field, context);
  if (!a.ok()) return a.status();
  SorSystem out;
  if (previous != nullptr && previous->a->values == a->values && sor::SamePattern(*previous->a, *a)) {
    out.a = previous->a;
  } else {
    out.a = std::make_shared<const sor::CsrMatrix>(*std::move(a));
  }
  auto rhs = ConvertRhs(in.b(), out.a->n, field + ".b", context.blobs);
  if (!rhs.ok()) return rhs.status();
  out.rhs = *std::move(rhs);
  if (!IsEmptyTensor(in.x0())) {
    auto x0 = ToDense(in.x0(), 1, field + ".x0", context.blobs);
    if (!x0.ok()) return x0.status();
    if (x0->values.size() != static_cast<size_t>(out.a->n)) {
      return Invalid(field + ".x0", absl::StrCat("has length ", x0->values.size(), ", want ", out.a->n));
    }
    if (absl::Status s = CheckFinite(x0->values, field + ".x0"); !s.ok()) return s;
    out.x0 = std::move(x0->values);
  }
  if (!std::isfinite(in.context())) return Invalid(field + ".context", "must be finite");
  out.context = in.context();
  return out;
}

absl::StatusOr<sor::Options> ConvertOptions(const v1::SorSequence& in) {
  sor::Options o;
  switch (in.method()) {
    case v1::SOR_METHOD_SOR: o.method = sor::Method::kSor; break;
    case v1::SOR_METHOD_SSOR: o.method = sor::Method::kSsor; break;
    case v1::SOR_METHOD_SSOR_CG: o.method = sor::Method::kSsorCg; break;
    case v1::SOR_METHOD_CG: o.method = sor::Method::kCg; break;
    default: return Invalid("sor.method", "unknown value");
  }
  switch (in.ordering()) {
    case v1::SOR_ORDERING_MULTICOLOR: o.ordering = sor::Ordering::kMulticolor; break;
    case v1::SOR_ORDERING_NATURAL: o.ordering = sor::Ordering::kNatural; break;
    default: return Invalid("sor.ordering", "unknown value");
  }
  if (in.tolerance() != 0) o.tolerance = in.tolerance();
  if (in.max_iterations() != 0) o.max_iterations = in.max_iterations();
  if (in.omega() != 0) o.omega = in.omega();
  if (!(o.tolerance > 0 && o.tolerance < 1)) return Invalid("sor.tolerance", "must lie in (0, 1)");
  if (o.max_iterations < 0) return Invalid("sor.max_iterations", "must not be negative");
  if (!(o.omega > 0 && o.omega < 2)) return Invalid("sor.omega", "must lie in (0, 2)");
  return o;
}

}  // namespace

absl::StatusOr<SorWork> ConvertSorSequence(const v1::SorSequence& in,
                                           const PrepareContext& context) {
  SorWork work;
  auto options = ConvertOptions(in);
  if (!options.ok()) return options.status();
  work.options = *options;
  work.warm_start = in.warm_start();
  work.omit_solutions = in.omit_solutions();
  work.raw_solutions = in.raw_solutions();
  if (in.systems().empty()) return Invalid("sor.systems", "is empty");
  int64_t solves = 0;
  for (int i = 0; i < in.systems_size(); ++i) {
    const std::string field = absl::StrCat("sor.systems[", i, "]");
    auto system = ConvertSystem(in.systems(i), field, context,
                                work.systems.empty() ? nullptr : &work.systems.back());
    if (!system.ok()) return system.status();
    // Symmetry and the rest of the method's demands, checked once per matrix.
    if (work.systems.empty() || work.systems.back().a != system->a) {
      absl::Status s = FromKernel(sor::ValidateOptions(::solverd::Device::Cpu(), *system->a, work.options));
      if (!s.ok()) return absl::Status(s.code(), absl::StrCat(field, ".", s.message()));
    }
    solves += static_cast<int64_t>(system->rhs.size());
    if (solves > kMaxSorSolvesPerJob) {
      return Invalid("sor.systems", absl::StrCat("more than ", kMaxSorSolvesPerJob, " solves in one job"));
    }
    work.systems.push_back(*std::move(system));
  }
  return work;
}

}  // namespace solverd::server
