#include "server/families/quant/family.h"

#include <cstdio>
#include <filesystem>
#include <memory>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "quant/model.h"
#include "quant/sequential_calibration.h"
#include "server/blob_store.h"
#include "server/families/quant/convert.h"
#include "server/families/quant/model_source.h"
#include "server/status_util.h"

ABSL_FLAG(int64_t, max_quant_model_bytes,
          solverd::server::QuantFamily::Info().size_limit.default_max,
          "largest model a quant job accepts, in bytes of weight files (all shards)");

namespace solverd::server {
namespace {

namespace quant = ::solverd::quant;

// Token ids for the sequential pass (QuantProblem.calibration_tokens).
struct CalibrationTokens {
  std::vector<int32_t> ids;
  quant::TokenRuns runs;
  bool given() const { return runs.sequences > 0; }
};

// The sequential pass's share of a job's progress: it quantizes every
// layer; writing the output is what is left.
constexpr double kPassShare = 0.9;

// Progress of one of a job's two passes as a share of the whole job.
class PassProgress final : public ::solverd::ProgressSink {
 public:
  PassProgress(::solverd::ProgressSink* sink, double first, double share)
      : sink_(sink), first_(first), share_(share) {}
  void Report(const ::solverd::Progress& progress) override {
    if (sink_ == nullptr) return;
    ::solverd::Progress p = progress;
    p.fraction = first_ + share_ * progress.fraction;
    sink_->Report(p);
  }

 private:
  ::solverd::ProgressSink* const sink_;
  const double first_, share_;
};

class PreparedQuant final : public PreparedJob {
 public:
  PreparedQuant(QuantModelSource model, HeldBytes calibration, CalibrationTokens tokens,
                quant::ModelOptions options, BlobStore* outputs, std::string owner)
      : model_(std::move(model)), calibration_(std::move(calibration)),
        tokens_(std::move(tokens)), options_(std::move(options)), outputs_(outputs),
        owner_(std::move(owner)) {}

  // Plans the parsed model with the calibration file; the plan refers to
  // the bytes this job keeps.
  absl::Status Plan() {
    quant::ModelInput input{std::move(model_.weights), model_.config, model_.config_json,
                            model_.tokenizer_json, model_.passthrough};
    if (model_.mapped) input.release_source = &MappedFile::Release;
    const ::solverd::Status s = quant::PlanModel(std::move(input), calibration_.bytes, options_,
                                                 &plan_);
    if (s.ok()) return absl::OkStatus();
    absl::Status out = FromKernel(s);
    return absl::Status(out.code(), absl::StrCat("quant.", out.message()));
  }

  // The largest layer's work, and the output unless it goes to disk as it
  // is written (--state_dir or --output_root): built in memory, it is at most
  // about the size of the weights. Mapped weights are paged in and out by
  // the kernel, so they are not counted.
  int64_t MemoryBytes() const override {
    const int64_t pass = tokens_.given() ? quant::SequentialMemoryBytes(
                                               plan_, tokens_.runs, options_.layer.method,
                                               !outputs_->WritesOutputsToDisk())
                                         : 0;
    return plan_.largest_layer_bytes + pass +
           (outputs_->WritesOutputsToDisk() ? 0 : model_.bytes);
  }
  int64_t ProblemSize() const override { return model_.bytes; }
  std::string BatchKey() const override {
    return plan_.selected_weights <= QuantFamily::kMaxBatchableWeights ? "quant/small" : "";
  }

  JobOutcome Run(const Lane& lane, ::solverd::ProgressSink* sink,
                 const ::solverd::CancelToken* cancel) override {
    quant::ModelOptions options = options_;
    options.layer.threads = lane.cpu_threads;
    options.output_path = outputs_->OutputPath();  // "": in memory
    quant::ModelResult result;
    JobOutcome outcome;
    std::string calibration_id;
    if (tokens_.given()) {
      outcome.status = CalibrateSequentially(lane, options, sink, cancel, &calibration_id);
    }
    if (!outcome.status.ok()) {
      KeepDoneLayers(&result);  // a cancel keeps the layers the pass finished
    } else {
      // After the sequential pass, which quantized the layers, the output.
      PassProgress writing(sink, tokens_.given() ? kPassShare : 0,
                           tokens_.given() ? 1 - kPassShare : 1);
      outcome.status = FromKernel(quant::QuantizeModel(lane.device, lane.stream, plan_, options,
                                                       &writing, cancel, &result));
    }
    outcome.iterations = static_cast<int64_t>(result.layers.size());
    if (!outcome.status.ok() && result.layers.empty()) return outcome;
    v1::QuantResult proto = QuantResultToProto(result, options, lane.device.ToString());
    proto.set_architecture(model_.config.model_type);
    proto.set_calibration_blob_id(calibration_id);
    if (outcome.status.ok()) outcome.status = Store(options.output_path, &result, &proto);
    outcome.result.emplace();
    *outcome.result->mutable_quant() = std::move(proto);
    return outcome;
  }

 private:
  // The sequential pass: it quantizes the plan's layers (plan_.done_layers),
  // and the Hessians it computes become a blob (a file in the output
  // directory when there is one).
  absl::Status CalibrateSequentially(const Lane& lane, const quant::ModelOptions& options,
                                     ::solverd::ProgressSink* sink,
                                     const ::solverd::CancelToken* cancel, std::string* id) {
    PassProgress progress(sink, 0, kPassShare);
    const std::string path = outputs_->OutputPath();  // "": in memory
    std::string file;
    const absl::Status s = FromKernel(quant::SequentialCalibration(
        lane.device, lane.stream, &plan_, options, tokens_.ids, tokens_.runs, &progress, cancel,
        path, &file));  // a file at `path` is removed on an error
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat("quant.", s.message()));
    std::error_code error;
    const uintmax_t size = path.empty() ? file.size() : std::filesystem::file_size(path, error);
    if (error) {
      std::remove(path.c_str());
      return absl::InternalError(absl::StrCat("quant: the calibration file ", path, ": ",
                                              error.message()));
    }
    auto blob = StoreBlob("calibration", path, std::move(file), static_cast<int64_t>(size));
    if (!blob.ok()) return blob.status();
    *id = *std::move(blob);
    return absl::OkStatus();
  }

  // The summaries of the layers the sequential pass quantized, in file order.
  void KeepDoneLayers(quant::ModelResult* result) const {
    for (const auto& t : plan_.selected) {
      const auto done = plan_.done_layers.find(t.name);
      if (done != plan_.done_layers.end()) result->layers.push_back(done->second.summary);
    }
  }

  // The output, in result->file or written to `path`, as a blob.
  absl::Status Store(const std::string& path, quant::ModelResult* result,
                     v1::QuantResult* proto) {
    auto blob = StoreBlob("output", path, std::move(result->file), result->file_bytes);
    if (!blob.ok()) return blob.status();
    proto->set_output_blob_id(*blob);
    proto->set_output_bytes(result->file_bytes);
    return absl::OkStatus();
  }

  // The id of a blob of `size` bytes, in `bytes` or written to `path`
  // (removed when it cannot be stored), counted against the owner's quota.
  absl::StatusOr<std::string> StoreBlob(const char* what, const std::string& path,
                                        std::string bytes, int64_t size) {
    if (absl::Status s = outputs_->Reserve(owner_, size); !s.ok()) {
      if (!path.empty()) std::remove(path.c_str());
      return absl::Status(s.code(), absl::StrCat("quant: storing the ", size, "-byte ", what,
                                                 ": ", s.message()));
    }
    auto blob = path.empty() ? outputs_->Put(owner_, std::move(bytes), absl::Now())
                             : outputs_->Adopt(owner_, path, absl::Now());
    if (!blob.ok()) {
      outputs_->Release(owner_, size);
      return blob.status();
    }
    return blob->id;
  }

  QuantModelSource model_;  // its weights move into plan_
  const HeldBytes calibration_;
  const CalibrationTokens tokens_;
  const quant::ModelOptions options_;
  BlobStore* const outputs_;
  const std::string owner_;
  quant::ModelPlan plan_;
};

// QuantProblem.calibration_tokens or calibration_text, checked against
// the model it runs.
absl::Status ReadCalibrationRuns(const v1::QuantProblem& in, const QuantModelSource& model,
                                 const PrepareContext& context, CalibrationTokens* out) {
  const bool from_text = in.has_calibration_text();
  const std::string field = from_text ? "calibration_text" : "calibration_tokens";
  const auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError("quant." + field + ": " + why);
  };
  if (in.has_calibration()) return bad("give calibration or " + field + ", not both");
  if (from_text && in.has_calibration_tokens()) {
    return bad("give calibration_tokens or calibration_text, not both");
  }
  if (!quant::IsLlamaFamily(model.config.model_type)) {
    return bad("needs a Llama-family checkpoint (config.json model_type llama, mistral or "
               "qwen2)");
  }
  if (in.target_bits() != 0 || in.target_bytes() != 0) {
    return bad("bit allocation (target_bits, target_bytes) does not run on the sequential "
               "pass; quantize from the calibration file it returns instead");
  }
  auto file = ReadQuantFile(from_text ? in.calibration_text() : in.calibration_tokens(),
                            "quant." + field, context);
  if (!file.ok()) return file.status();
  const quant::ModelConfig& c = model.config;
  const ::solverd::Status s =
      from_text ? quant::CalibrationTokensFromText(
                      file->bytes, model.tokenizer_json, c.vocab_size, c.max_position_embeddings,
                      in.calibration_sequences(), in.calibration_length(), &out->ids, &out->runs)
                : quant::ReadCalibrationTokens(file->bytes, c.vocab_size,
                                               c.max_position_embeddings, &out->ids, &out->runs);
  if (!s.ok()) return bad(s.message());
  return absl::OkStatus();
}

// calibration_sequences and calibration_length: counts, for text only.
absl::Status CheckTextShape(const v1::QuantProblem& in) {
  for (const auto& [name, value] : {std::pair<const char*, int32_t>{"calibration_sequences",
                                                                    in.calibration_sequences()},
                                    {"calibration_length", in.calibration_length()}}) {
    if (value < 0) {
      return absl::InvalidArgumentError(absl::StrCat("quant.", name, ": must be >= 0, not ",
                                                     value));
    }
    if (value > 0 && !in.has_calibration_text()) {
      return absl::InvalidArgumentError(
          absl::StrCat("quant.", name, ": applies to calibration_text only"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

const FamilyInfo& QuantFamily::Info() {
  static const FamilyInfo* const kInfo = new FamilyInfo{
      "quant", {v1::JobSpec::kQuant}, {"max_quant_model_bytes", "model bytes", int64_t{4} << 30}};
  return *kInfo;
}

absl::StatusOr<std::unique_ptr<Family>> QuantFamily::Create(const FamilyServices& services) {
  if (services.blobs == nullptr) {
    return absl::FailedPreconditionError("quant: this server has no blob store for outputs");
  }
  return std::make_unique<QuantFamily>(services.blobs);
}

void QuantFamily::RunBatch(const Lane& lane, std::vector<BatchMember>& batch) const {
  RunSideBySide(lane, batch);
}

absl::StatusOr<std::unique_ptr<PreparedJob>> QuantFamily::Prepare(
    const v1::JobSpec& spec, const PrepareContext& context) const {
  const v1::QuantProblem& in = spec.quant();
  auto options = QuantOptionsFromProto(in);
  if (!options.ok()) return options.status();
  auto model = ReadQuantModel(in.model(), context);
  if (!model.ok()) return model.status();
  HeldBytes calibration;
  if (in.has_calibration()) {
    auto read = ReadQuantFile(in.calibration(), "quant.calibration", context);
    if (!read.ok()) return read.status();
    calibration = *std::move(read);
  }
  if (absl::Status s = CheckTextShape(in); !s.ok()) return s;
  CalibrationTokens tokens;
  if (in.has_calibration_tokens() || in.has_calibration_text()) {
    absl::Status s = ReadCalibrationRuns(in, *model, context, &tokens);
    if (!s.ok()) return s;
    options->calibration_from_tokens = true;
  }
  auto job = std::make_unique<PreparedQuant>(*std::move(model), std::move(calibration),
                                             std::move(tokens), *std::move(options), outputs_,
                                             context.owner);
  if (absl::Status s = job->Plan(); !s.ok()) return s;
  return job;
}

}  // namespace solverd::server
