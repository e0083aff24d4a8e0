// solverctl's task commands, which need no JSON: fir, sor solve and
// quantize, and the demos of sor, dmmv and quant. Each builds its problem
// from flags and files, runs it to the end with the usual progress, and
// writes what a user wants back (taps, the solution, the quantized model).
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "client/commands.h"
#include "client/demo_problems.h"
#include "client/event_printer.h"

ABSL_DECLARE_FLAG(int, order);
ABSL_DECLARE_FLAG(int, bits);
ABSL_DECLARE_FLAG(std::string, passband);
ABSL_DECLARE_FLAG(std::string, stopband);
ABSL_DECLARE_FLAG(std::string, type);
ABSL_DECLARE_FLAG(std::string, out);
ABSL_DECLARE_FLAG(std::string, tuner);
ABSL_DECLARE_FLAG(std::string, method);
ABSL_DECLARE_FLAG(double, tolerance);
ABSL_DECLARE_FLAG(double, omega);
ABSL_DECLARE_FLAG(int, side);
ABSL_DECLARE_FLAG(int, systems);
ABSL_DECLARE_FLAG(std::string, algorithm);
ABSL_DECLARE_FLAG(uint64_t, seed);

namespace solverd::client {
namespace {

absl::Status Usage(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("usage: solverctl ", what));
}

// "0.2" or "0.1,0.3": the band edges a flag gives.
absl::StatusOr<std::vector<double>> Edges(const char* flag, const std::string& text) {
  std::vector<double> edges;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    double edge;
    if (!absl::SimpleAtod(part, &edge)) {
      return absl::InvalidArgumentError(absl::StrCat("--", flag, ": not a number: ", part));
    }
    edges.push_back(edge);
  }
  return edges;
}

// The FirDesign the fir flags describe: lowpass --passband=END --stopband=START,
// highpass --stopband=END --passband=START, bandpass --passband=LO,HI
// --stopband=LOW_END,HIGH_START.
absl::StatusOr<v1::FirDesign> FirFromFlags() {
  auto pass = Edges("passband", absl::GetFlag(FLAGS_passband));
  auto stop = Edges("stopband", absl::GetFlag(FLAGS_stopband));
  if (!pass.ok()) return pass.status();
  if (!stop.ok()) return stop.status();
  v1::FirDesign fir;
  fir.set_order(absl::GetFlag(FLAGS_order));
  fir.set_bits(absl::GetFlag(FLAGS_bits));
  const std::string type = absl::GetFlag(FLAGS_type);
  const size_t per_band = type == "bandpass" ? 2 : 1;
  if (pass->size() != per_band || stop->size() != per_band) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--passband, --stopband: a ", type, " filter takes ", per_band, " edge",
        per_band == 1 ? "" : "s (comma-separated)", " each"));
  }
  std::vector<double> edges;
  if (type == "lowpass") {
    fir.set_type(v1::FIR_TYPE_LOW_PASS);
    edges = {(*pass)[0], (*stop)[0]};
  } else if (type == "highpass") {
    fir.set_type(v1::FIR_TYPE_HIGH_PASS);
    edges = {(*stop)[0], (*pass)[0]};
  } else if (type == "bandpass") {
    fir.set_type(v1::FIR_TYPE_BAND_PASS);
    edges = {(*stop)[0], (*pass)[0], (*pass)[1], (*stop)[1]};
  } else {
    return absl::InvalidArgumentError("--type: one of lowpass, highpass, bandpass");
  }
  fir.mutable_edges()->Add(edges.begin(), edges.end());
  return fir;
}

// The taps as JSON: integers, their scale, the coefficients and errors.
std::string TapsJson(const v1::FirResult& f) {
  std::vector<std::string> coefficients;
  for (int64_t k : f.taps()) coefficients.push_back(absl::StrFormat("%.17g", k * f.scale()));
  return absl::StrFormat(
      "{\"taps\": [%s], \"scale\": %.17g, \"coefficients\": [%s], "
      "\"passband_deviation\": %.17g, \"stopband_peak\": %.17g, \"max_error\": %.17g}\n",
      absl::StrJoin(f.taps(), ", "), f.scale(), absl::StrJoin(coefficients, ", "),
      f.passband_deviation(), f.stopband_peak(), f.max_error());
}

absl::Status WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("--out: cannot write ", path));
  return absl::OkStatus();
}

absl::Status Fir(SolverClient& client) {
  auto fir = FirFromFlags();
  if (!fir.ok()) return fir.status();
  v1::JobSpec spec;
  spec.mutable_dmmv()->mutable_fir()->Swap(&*fir);
  spec.mutable_dmmv()->set_seed(absl::GetFlag(FLAGS_seed));
  auto job = RunToEnd(client, spec);
  if (!job.ok()) return job.status();
  const std::string out = absl::GetFlag(FLAGS_out);
  return out.empty() ? absl::OkStatus() : WriteFile(out, TapsJson(job->result().dmmv().fir()));
}

// A tuner named for this run, so that the demo learns from nothing.
absl::StatusOr<std::string> FreshTuner(SolverClient& client) {
  // The systems' contexts (their shifts) span [0, 1), the flags' default.
  auto request = TunerRequestFromFlags(absl::StrCat(
      "demo-sor-", absl::GetFlag(FLAGS_seed), "-", absl::ToUnixMicros(absl::Now())));
  if (!request.ok()) return request.status();
  grpc::ClientContext ctx;
  v1::Tuner tuner;
  grpc::Status s = client.stub().CreateTuner(&ctx, *request, &tuner);
  if (!s.ok()) return FromGrpc(s);
  return tuner.name();
}

absl::Status DemoSor(SolverClient& client) {
  const int side = absl::GetFlag(FLAGS_side), systems = absl::GetFlag(FLAGS_systems);
  if (side < 2 || side > 2000 || systems < 1 || systems > 1000) {
    return absl::InvalidArgumentError("demo sor: --side in 2..2000, --systems in 1..1000");
  }
  auto tuner = FreshTuner(client);
  if (!tuner.ok()) return tuner.status();
  std::printf("tuner %s (%s)\n", tuner->c_str(), absl::GetFlag(FLAGS_algorithm).c_str());
  v1::JobSpec spec;
  *spec.mutable_sor() = ShiftedPoissonSequence(side, systems, absl::GetFlag(FLAGS_seed));
  spec.mutable_sor()->set_tuner(*tuner);
  spec.mutable_sor()->set_omit_solutions(true);
  auto job = RunToEnd(client, spec);
  grpc::ClientContext ctx;  // the tuner was this run's alone
  v1::DeleteTunerRequest remove;
  remove.set_name(*tuner);
  v1::DeleteTunerResponse removed;
  (void)client.stub().DeleteTuner(&ctx, remove, &removed);
  return job.ok() ? absl::OkStatus() : job.status();
}

absl::Status DemoDmmv(SolverClient& client) { return Fir(client); }

// Right-hand sides from text: one number per line is one b; lines of
// several numbers are one b each ([k, n]).
absl::StatusOr<v1::Tensor> RightHandSides(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::vector<std::vector<double>> rows;
  for (std::string line; std::getline(in, line);) {
    std::vector<double> row;
    for (absl::string_view word :
         absl::StrSplit(line, absl::ByAnyChar(" \t,"), absl::SkipEmpty())) {
      double v;
      if (!absl::SimpleAtod(word, &v)) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": not a number: ", word));
      }
      row.push_back(v);
    }
    if (!row.empty()) rows.push_back(std::move(row));
  }
  if (rows.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no numbers"));
  v1::Tensor b;
  const bool column = std::all_of(rows.begin(), rows.end(), [](auto& r) { return r.size() == 1; });
  if (column) {
    b.add_shape(static_cast<int64_t>(rows.size()));
    for (const auto& r : rows) b.add_values(r[0]);
    return b;
  }
  b.add_shape(static_cast<int64_t>(rows.size()));
  b.add_shape(static_cast<int64_t>(rows[0].size()));
  for (const auto& r : rows) {
    if (r.size() != rows[0].size()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": rows of different lengths"));
    }
    for (double v : r) b.add_values(v);
  }
  return b;
}

absl::StatusOr<v1::SorMethod> SorMethodFromFlag() {
  const std::string name = absl::GetFlag(FLAGS_method);
  if (name.empty() || name == "ssor-cg") return v1::SOR_METHOD_SSOR_CG;
  if (name == "sor") return v1::SOR_METHOD_SOR;
  if (name == "ssor") return v1::SOR_METHOD_SSOR;
  if (name == "cg") return v1::SOR_METHOD_CG;
  return absl::InvalidArgumentError("--method: one of ssor-cg, sor, ssor, cg");
}

// sor solve A.mtx B.txt: A uploaded as Matrix Market, x written to --out
// (or stdout), one line per right-hand side.
absl::Status SorSolve(SolverClient& client, const std::vector<std::string>& args) {
  if (args.size() != 3 || args[0] != "solve") {
    return Usage("sor solve A.mtx B.txt [--tuner=NAME | --omega=W] [--method=ssor-cg|sor|ssor|cg]"
                 " [--tolerance=T] [--out=x.txt]");
  }
  auto method = SorMethodFromFlag();
  if (!method.ok()) return method.status();
  auto b = RightHandSides(args[2]);
  if (!b.ok()) return b.status();
  auto a = UploadWithProgress(client, args[1]);
  if (!a.ok()) return a.status();
  v1::JobSpec spec;
  v1::SorSequence& sequence = *spec.mutable_sor();
  v1::LinearSystem& system = *sequence.add_systems();
  system.set_a_blob_id(a->blob_id());
  *system.mutable_b() = *std::move(b);
  sequence.set_method(*method);
  sequence.set_tuner(absl::GetFlag(FLAGS_tuner));
  sequence.set_omega(absl::GetFlag(FLAGS_omega));
  sequence.set_tolerance(absl::GetFlag(FLAGS_tolerance));
  auto job = RunToEnd(client, spec);
  if (!job.ok()) return job.status();
  std::string x;
  for (const v1::SorSolveResult& solve : job->result().sor().solves()) {
    absl::StrAppend(&x, absl::StrJoin(solve.x(), " ", [](std::string* out, double v) {
                      absl::StrAppendFormat(out, "%.17g", v);
                    }), "\n");
  }
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) {
    std::fputs(x.c_str(), stdout);
    return absl::OkStatus();
  }
  return WriteFile(out, x);
}

}  // namespace

absl::Status TaskCommand(SolverClient& client, const std::string& command,
                         const std::vector<std::string>& args) {
  if (command == "fir") {
    if (!args.empty()) return Usage("fir --order=N --bits=P --passband=A --stopband=B "
                                    "[--type=lowpass|highpass|bandpass] [--out=taps.json]");
    return Fir(client);
  }
  if (command == "demo" && args.size() == 1 && args[0] == "sor") return DemoSor(client);
  if (command == "demo" && args.size() == 1 && args[0] == "dmmv") return DemoDmmv(client);
  if (command == "demo" && args.size() == 1 && args[0] == "quant") return DemoQuant(client);
  if (command == "sor") return SorSolve(client, args);
  if (command == "quantize") return Quantize(client, args);
  return absl::InvalidArgumentError(absl::StrCat("not a task command: ", command));
}

}  // namespace solverd::client
