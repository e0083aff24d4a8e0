#include "server/families/quant/convert.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"

namespace solverd::server {
namespace {

namespace quant = ::solverd::quant;

absl::StatusOr<quant::Method> MethodFromProto(v1::QuantMethod m) {
  switch (m) {
    case v1::QUANT_METHOD_UNSPECIFIED:
    case v1::QUANT_METHOD_RTN: return quant::Method::kRtn;
    case v1::QUANT_METHOD_GPTQ: return quant::Method::kGptq;
    case v1::QUANT_METHOD_DMMV: return quant::Method::kDmmv;
    case v1::QUANT_METHOD_NF4: return quant::Method::kNf4;
    case v1::QUANT_METHOD_INT8_BLOCKWISE: return quant::Method::kInt8Blockwise;
    case v1::QUANT_METHOD_HQQ: return quant::Method::kHqq;
    default: return absl::InvalidArgumentError(absl::StrCat("quant.method: unknown value ", m));
  }
}

// A K-quant gguf_type fixes the grids: the fields that shape them must be
// left unset, and the allocation's widths default to the three K types.
absl::Status KQuantOptionsFromProto(const v1::QuantProblem& in, quant::ModelOptions* out) {
  const char* type = quant::GgufTypeName(out->gguf_type);
  const int bits = quant::GgufTypeBits(out->gguf_type);
  if (in.bits() != 0 && in.bits() != bits) {
    return absl::InvalidArgumentError(absl::StrCat("quant.bits: gguf_type ", type, " is ", bits,
                                                   "-bit; leave bits unset"));
  }
  if (in.group_size() != 0 || in.symmetric() || in.clip_search()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "quant.", in.group_size() != 0 ? "group_size" : in.symmetric() ? "symmetric"
                                                                         : "clip_search",
        ": gguf_type ", type, " fixes its grids (groups of 32, or 16 for Q6_K, under "
        "super-blocks of 256); leave it unset"));
  }
  if (out->layer.method != quant::Method::kRtn && out->layer.method != quant::Method::kGptq) {
    return absl::InvalidArgumentError(absl::StrCat("quant.method: gguf_type ", type,
                                                   " is rounded by rtn or gptq, not ",
                                                   quant::MethodName(out->layer.method)));
  }
  out->layer.k_quant = true;
  out->layer.bits = bits;
  if (in.allocation_bits().empty()) out->allocation_bits = {4, 5, 6};
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<quant::ModelOptions> QuantOptionsFromProto(const v1::QuantProblem& in) {
  quant::ModelOptions out;
  quant::Options& o = out.layer;
  absl::StatusOr<quant::Method> method = MethodFromProto(in.method());
  if (!method.ok()) return method.status();
  o.method = *method;
  o.bits = in.bits() != 0                                 ? in.bits()
           : o.method == quant::Method::kInt8Blockwise ? 8
                                                           : 4;
  const bool blockwise = quant::IsBlockwise(o.method);
  if (in.group_size() < -1) return absl::InvalidArgumentError("quant.group_size: must be >= -1");
  o.group_size = in.group_size() == 0 ? (blockwise ? 64 : 128)
                 : in.group_size() == -1 ? 0
                                         : in.group_size();
  if (blockwise && in.group_size() == -1) {
    return absl::InvalidArgumentError("quant.group_size: block-wise methods need a block size");
  }
  o.symmetric = in.symmetric();
  o.clip_search = in.clip_search();
  if (in.damp() != 0) o.damp = in.damp();
  o.act_order = in.act_order();
  o.double_quant = in.double_quant();
  if (in.dmmv_outer_iterations() != 0) o.dmmv_outer_iterations = in.dmmv_outer_iterations();
  o.dmmv_time_limit_seconds = in.dmmv_time_limit_seconds();
  if (in.hqq_iterations() != 0) o.hqq_iterations = in.hqq_iterations();
  switch (in.format()) {
    case v1::QUANT_FORMAT_SOLVERD: out.format = quant::ExportFormat::kSolverd; break;
    case v1::QUANT_FORMAT_GPTQ: out.format = quant::ExportFormat::kGptq; break;
    case v1::QUANT_FORMAT_GGUF: out.format = quant::ExportFormat::kGguf; break;
    default: return absl::InvalidArgumentError(absl::StrCat("quant.format: unknown value ",
                                                            in.format()));
  }
  if (in.gguf_type() != v1::QUANT_GGUF_TYPE_FROM_BITS && in.format() != v1::QUANT_FORMAT_GGUF) {
    return absl::InvalidArgumentError("quant.gguf_type: only with format gguf");
  }
  switch (in.gguf_type()) {
    case v1::QUANT_GGUF_TYPE_FROM_BITS: break;
    case v1::QUANT_GGUF_TYPE_F16: out.gguf_type = quant::GgufType::kF16; break;
    case v1::QUANT_GGUF_TYPE_Q4_K: out.gguf_type = quant::GgufType::kQ4_K; break;
    case v1::QUANT_GGUF_TYPE_Q5_K: out.gguf_type = quant::GgufType::kQ5_K; break;
    case v1::QUANT_GGUF_TYPE_Q6_K: out.gguf_type = quant::GgufType::kQ6_K; break;
    case v1::QUANT_GGUF_TYPE_Q4_K_M: out.gguf_type = quant::GgufType::kQ4_K_M; break;
    default: return absl::InvalidArgumentError(absl::StrCat("quant.gguf_type: unknown value ",
                                                            in.gguf_type()));
  }
  if (quant::WritesKQuants(out)) {
    absl::Status k = KQuantOptionsFromProto(in, &out);
    if (!k.ok()) return k;
  }
  if (in.max_shard_bytes() < 0) {
    return absl::InvalidArgumentError("quant.max_shard_bytes: must be positive (0: 4 GiB)");
  }
  if (in.max_shard_bytes() > 0) out.max_shard_bytes = in.max_shard_bytes();
  out.target_bits = in.target_bits();
  out.target_bytes = in.target_bytes();
  switch (in.allocation_error()) {
    case v1::QUANT_ALLOCATION_ERROR_RELATIVE:
      out.allocation_error = quant::AllocationError::kRelative;
      break;
    case v1::QUANT_ALLOCATION_ERROR_ABSOLUTE:
      out.allocation_error = quant::AllocationError::kAbsolute;
      break;
    default: return absl::InvalidArgumentError(absl::StrCat(
        "quant.allocation_error: unknown value ", in.allocation_error()));
  }
  if (!in.allocation_bits().empty()) {
    out.allocation_bits.assign(in.allocation_bits().begin(), in.allocation_bits().end());
  }
  if (quant::AllocatesBits(out) && in.bits() != 0) {
    return absl::InvalidArgumentError(
        "quant.bits: leave unset with target_bits or target_bytes (the allocation chooses "
        "each layer's bits)");
  }
  out.include.assign(in.include().begin(), in.include().end());
  out.exclude.assign(in.exclude().begin(), in.exclude().end());
  if (out.exclude.empty() && !in.no_default_excludes()) out.exclude = quant::DefaultExcludes();
  return out;
}

v1::QuantResult QuantResultToProto(const quant::ModelResult& r, const quant::ModelOptions& options,
                                   const std::string& device) {
  v1::QuantResult out;
  for (const quant::LayerSummary& s : r.layers) {
    v1::QuantLayerReport* l = out.add_layers();
    l->set_name(s.name);
    l->set_rows(s.rows);
    l->set_cols(s.cols);
    l->set_tokens(s.tokens);
    l->set_bits(s.bits);
    l->set_group_size(s.group_size);
    l->set_weight_mse(s.report.weight_mse);
    l->set_max_abs_error(s.report.max_abs_error);
    l->set_relative_output_error(s.report.relative_output_error);
    l->set_max_violation(s.report.max_violation);
    l->set_seconds(s.report.seconds);
    l->set_batch_layers(s.batch_layers);
    l->set_bytes_before(s.bytes_before);
    l->set_bytes_after(s.bytes_after);
    for (const quant::BitsCandidate& c : s.candidates) {
      v1::QuantBitsCandidate* out_c = l->add_candidates();
      out_c->set_bits(c.bits);
      out_c->set_bytes(c.bytes);
      out_c->set_output_error_squared(c.output_error_squared);
      out_c->set_allocation_error(c.error);
    }
  }
  out.set_bytes_before(r.bytes_before);
  out.set_bytes_after(r.bytes_after);
  out.set_average_bits(r.average_bits);
  out.set_copied_tensors(r.copied_tensors);
  out.set_seconds(r.seconds);
  out.set_device(device);
  out.set_method(quant::MethodName(options.layer.method));
  out.set_format(quant::ExportFormatName(options.format));
  out.set_layer_budget_bytes(r.layer_budget_bytes);
  for (const std::string& note : r.notes) out.add_notes(note);
  for (const std::string& file : r.output_files) out.add_output_files(file);
  return out;
}

}  // namespace solverd::server
