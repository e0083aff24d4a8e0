#include "server/families/quant/family.h"

#include <cstdio>
#include <memory>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "quant/model.h"
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

class PreparedQuant final : public PreparedJob {
 public:
  PreparedQuant(QuantModelSource model, HeldBytes calibration, quant::ModelOptions options,
                BlobStore* outputs, std::string owner)
      : model_(std::move(model)), calibration_(std::move(calibration)),
        options_(std::move(options)), outputs_(outputs), owner_(std::move(owner)) {}

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
    return plan_.largest_layer_bytes + (outputs_->WritesOutputsToDisk() ? 0 : model_.bytes);
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
    outcome.status = FromKernel(
        quant::QuantizeModel(lane.device, lane.stream, plan_, options, sink, cancel, &result));
    outcome.iterations = static_cast<int64_t>(result.layers.size());
    if (!outcome.status.ok() && result.layers.empty()) return outcome;
    v1::QuantResult proto = QuantResultToProto(result, options, lane.device.ToString());
    proto.set_architecture(model_.config.model_type);
    if (outcome.status.ok()) outcome.status = Store(options.output_path, &result, &proto);
    outcome.result.emplace();
    *outcome.result->mutable_quant() = std::move(proto);
    return outcome;
  }

 private:
  // The output, in result->file or written to `path`, as a blob.
  absl::Status Store(const std::string& path, quant::ModelResult* result,
                     v1::QuantResult* proto) {
    const int64_t size = result->file_bytes;
    if (absl::Status s = outputs_->Reserve(owner_, size); !s.ok()) {
      if (!path.empty()) std::remove(path.c_str());
      return absl::Status(s.code(), absl::StrCat("quant: storing the ", size,
                                                 "-byte output: ", s.message()));
    }
    auto blob = path.empty() ? outputs_->Put(owner_, std::move(result->file), absl::Now())
                             : outputs_->Adopt(owner_, path, absl::Now());
    if (!blob.ok()) {
      outputs_->Release(owner_, size);
      return blob.status();
    }
    proto->set_output_blob_id(blob->id);
    proto->set_output_bytes(size);
    return absl::OkStatus();
  }

  QuantModelSource model_;  // its weights move into plan_
  const HeldBytes calibration_;
  const quant::ModelOptions options_;
  BlobStore* const outputs_;
  const std::string owner_;
  quant::ModelPlan plan_;
};

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
  auto job = std::make_unique<PreparedQuant>(*std::move(model), std::move(calibration),
                                             *std::move(options), outputs_, context.owner);
  if (absl::Status s = job->Plan(); !s.ok()) return s;
  return job;
}

}  // namespace solverd::server
