#include "client/result_summary.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace solverd::client {
namespace {

// Appends "... and N more" when `total` items did not all fit.
void MoreLine(int total, int shown, std::string* out) {
  if (total > shown) absl::StrAppendFormat(out, "  ... and %d more\n", total - shown);
}

std::string Ot(const v1::OtResult& ot) {
  return absl::StrFormat(
      "result: transport_cost %.10g  entropic_objective %.10g  marginal_error %.3e"
      "  iterations %d (sinkhorn %d in %.3fs, newton %d in %.3fs, cg %.3fs)  %s\n",
      ot.transport_cost(), ot.entropic_objective(), ot.marginal_error(), ot.iterations(),
      ot.sinkhorn_iterations(), ot.sinkhorn_seconds(), ot.newton_iterations(),
      ot.newton_seconds(), ot.cg_seconds(), v1::OtTermination_Name(ot.termination()));
}

std::string OtBatch(const v1::OtBatchResult& batch) {
  int converged = 0;
  double cost = 0;
  for (const v1::OtResult& ot : batch.results()) {
    converged += ot.termination() == v1::OT_TERMINATION_CONVERGED;
    cost += ot.transport_cost();
  }
  return absl::StrFormat("result: %d problems, %d converged, total transport_cost %.10g\n",
                         batch.results_size(), converged, cost);
}

std::string Sor(const v1::SorSequenceResult& sor, int max_items) {
  std::string out = absl::StrFormat("result: %d solves, %d iterations in all, %.3fs%s\n",
                                    sor.solves_size(), sor.total_iterations(), sor.seconds(),
                                    sor.tuner().empty() ? "" : ", tuner " + sor.tuner());
  const int shown = std::min(sor.solves_size(), max_items);
  for (int k = 0; k < shown; ++k) {
    const v1::SorSolveResult& s = sor.solves(k);
    absl::StrAppendFormat(&out, "  system %d rhs %d: omega %.4f  iterations %d  residual %.3e%s\n",
                          s.system(), s.rhs(), s.omega(), s.iterations(), s.relative_residual(),
                          s.converged() ? "" : "  (not converged)");
  }
  MoreLine(sor.solves_size(), shown, &out);
  return out;
}

std::string Dmmv(const v1::DmmvResult& dmmv, int max_items) {
  std::string out;
  if (dmmv.has_fir()) {
    const v1::FirResult& f = dmmv.fir();
    absl::StrAppendFormat(&out,
                          "result: FIR of %d taps, scale %g: max error %.6g (passband deviation "
                          "%.6g, stopband peak %.6g)\n  taps: %s\n",
                          f.taps_size(), f.scale(), f.max_error(), f.passband_deviation(),
                          f.stopband_peak(), absl::StrJoin(f.taps(), " "));
  }
  if (dmmv.has_tomography()) {
    absl::StrAppendFormat(&out, "result: %d x %d image, %d detectors per angle\n",
                          dmmv.tomography().size(), dmmv.tomography().size(),
                          dmmv.tomography().detectors());
  }
  absl::StrAppendFormat(&out, "result: %d instances, %.3fs on %s\n", dmmv.instances_size(),
                        dmmv.seconds(), dmmv.device());
  const int shown = std::min(dmmv.instances_size(), max_items);
  for (int k = 0; k < shown; ++k) {
    const v1::DmmvInstanceResult& r = dmmv.instances(k);
    absl::StrAppendFormat(&out,
                          "  instance %d: max violation %.6g (start %.6g)  l2 %.6g  moves %d  "
                          "rounds %d\n",
                          k, r.max_violation(), r.start_max_violation(), r.l2(), r.moves(),
                          r.outer_iterations());
  }
  MoreLine(dmmv.instances_size(), shown, &out);
  return out;
}

std::string Quant(const v1::QuantResult& q, int max_items) {
  std::string out = absl::StrFormat(
      "result: %s to %s, %.3f bits per weight, %d -> %d bytes of tensors, %d layers, %.2fs on "
      "%s\n  output: blob %s (%d bytes)\n",
      q.method(), q.format().empty() ? "solverd" : q.format(), q.average_bits(),
      q.bytes_before(), q.bytes_after(), q.layers_size(), q.seconds(), q.device(),
      q.output_blob_id(), q.output_bytes());
  if (!q.calibration_blob_id().empty()) {
    absl::StrAppendFormat(&out, "  calibration: blob %s\n", q.calibration_blob_id());
  }
  const int shown = std::min(q.layers_size(), max_items);
  for (int k = 0; k < shown; ++k) {
    const v1::QuantLayerReport& l = q.layers(k);
    absl::StrAppendFormat(&out, "  %s [%d x %d]: %d bits  weight mse %.3e  output error %.4f\n",
                          l.name(), l.rows(), l.cols(), l.bits(), l.weight_mse(),
                          l.relative_output_error());
  }
  MoreLine(q.layers_size(), shown, &out);
  for (const std::string& note : q.notes()) absl::StrAppend(&out, "  note: ", note, "\n");
  return out;
}

}  // namespace

std::string ResultSummary(const v1::JobResult& result, int max_items) {
  switch (result.result_case()) {
    case v1::JobResult::kOt: return Ot(result.ot());
    case v1::JobResult::kOtBatch: return OtBatch(result.ot_batch());
    case v1::JobResult::kSor: return Sor(result.sor(), max_items);
    case v1::JobResult::kDmmv: return Dmmv(result.dmmv(), max_items);
    case v1::JobResult::kQuant: return Quant(result.quant(), max_items);
    case v1::JobResult::RESULT_NOT_SET: return "";
  }
  return "";
}

}  // namespace solverd::client
