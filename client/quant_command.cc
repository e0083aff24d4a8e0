// solverctl quantize MODEL and demo quant: a safetensors file or a Hugging
// Face checkpoint folder streamed up, quantized with the per-layer report
// as it goes, and the output streamed down to --out (a file, or the folder
// of a gptq checkpoint, which the server sends as a tar).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/commands.h"
#include "client/demo_problems.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "util/sha256.h"

ABSL_DECLARE_FLAG(int, bits);
ABSL_DECLARE_FLAG(std::string, out);
ABSL_DECLARE_FLAG(std::string, method);
ABSL_DECLARE_FLAG(std::string, calibration);
ABSL_DECLARE_FLAG(std::string, format);
ABSL_DECLARE_FLAG(int64_t, group_size);
ABSL_DECLARE_FLAG(bool, symmetric);
ABSL_DECLARE_FLAG(std::string, gguf_type);
ABSL_DECLARE_FLAG(uint64_t, seed);

namespace solverd::client {
namespace {

namespace fs = std::filesystem;

// The files of a checkpoint folder a quant job reads: config.json, the
// weights (model.safetensors, or the index and each shard it lists) and
// the tokenizer files present.
absl::StatusOr<std::vector<std::string>> CheckpointFiles(const fs::path& folder) {
  std::vector<std::string> names;
  for (const char* name : {"config.json", "model.safetensors", "model.safetensors.index.json",
                           "tokenizer.json", "tokenizer_config.json", "generation_config.json",
                           "special_tokens_map.json"}) {
    if (fs::is_regular_file(folder / name)) names.push_back(name);
  }
  if (fs::is_regular_file(folder / "model.safetensors.index.json")) {
    std::ifstream in(folder / "model.safetensors.index.json");
    std::stringstream text;
    text << in.rdbuf();
    google::protobuf::Struct index;
    if (!google::protobuf::util::JsonStringToMessage(text.str(), &index).ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat((folder / "model.safetensors.index.json").string(), ": not JSON"));
    }
    for (const auto& [tensor, shard] : index.fields().at("weight_map").struct_value().fields()) {
      if (std::find(names.begin(), names.end(), shard.string_value()) == names.end()) {
        names.push_back(shard.string_value());
      }
    }
  }
  if (names.empty() || names[0] != "config.json") {
    return absl::NotFoundError(
        absl::StrCat(folder.string(), ": no config.json (not a checkpoint)"));
  }
  return names;
}

// A QuantFile for a model or calibration file, or a checkpoint folder.
absl::StatusOr<v1::QuantFile> UploadModel(SolverClient& client, const std::string& path) {
  v1::QuantFile file;
  if (!fs::is_directory(path)) {
    auto blob = UploadWithProgress(client, path);
    if (!blob.ok()) return blob.status();
    file.set_blob_id(blob->blob_id());
    return file;
  }
  auto names = CheckpointFiles(path);
  if (!names.ok()) return names.status();
  for (const std::string& name : *names) {
    auto blob = UploadWithProgress(client, (fs::path(path) / name).string());
    if (!blob.ok()) return blob.status();
    v1::QuantCheckpointFile& entry = *file.mutable_checkpoint_blobs()->add_files();
    entry.set_name(name);
    entry.set_blob_id(blob->blob_id());
  }
  return file;
}

// The members `names` of the ustar file at `tar` written into `folder`.
absl::Status ExtractMembers(const std::string& tar, const std::vector<std::string>& names,
                            const fs::path& folder) {
  std::ifstream in(tar, std::ios::binary);
  std::error_code error;
  const uint64_t tar_bytes = fs::file_size(tar, error);
  std::set<std::string> wanted(names.begin(), names.end());
  fs::create_directories(folder);
  for (char header[512]; in.read(header, 512) && header[0] != '\0';) {
    std::string name(header, strnlen(header, 100));
    if (header[345] != '\0') {  // ustar: a long name's leading folders
      name = std::string(header + 345, strnlen(header + 345, 155)) + "/" + name;
    }
    const uint64_t size = std::strtoull(std::string(header + 124, 12).c_str(), nullptr, 8);
    if (error || size > tar_bytes) {
      return absl::DataLossError(absl::StrCat(tar, ": member ", name, " claims ", size, " bytes"));
    }
    std::string data(size, '\0');
    in.read(data.data(), static_cast<std::streamsize>(size));
    in.ignore(static_cast<std::streamsize>((512 - size % 512) % 512));
    if (!in) return absl::DataLossError(absl::StrCat(tar, ": truncated at ", name));
    if (wanted.erase(name) == 0) continue;
    if (name.empty() || name[0] == '/' || absl::StrContains(name, "..") || header[156] != '0') {
      return absl::DataLossError(absl::StrCat(tar, ": unexpected member ", name));
    }
    std::ofstream member(folder / name, std::ios::binary);
    member << data;
    if (!member.flush()) {
      return absl::InternalError(absl::StrCat("cannot write ", (folder / name).string()));
    }
  }
  if (!wanted.empty()) {
    return absl::DataLossError(absl::StrCat(tar, ": missing ", *wanted.begin()));
  }
  return absl::OkStatus();
}

// Downloads the job's output to `out`: the file, or the folder a tar holds.
absl::Status SaveOutput(SolverClient& client, const v1::QuantResult& result,
                        const std::string& out) {
  if (result.output_files().empty()) {
    auto size = DownloadWithProgress(client, result.output_blob_id(), out);
    return size.ok() ? absl::OkStatus() : size.status();
  }
  const std::string tar = out + ".tar";
  auto size = DownloadWithProgress(client, result.output_blob_id(), tar);
  if (!size.ok()) return size.status();
  absl::Status extracted = ExtractMembers(
      tar, {result.output_files().begin(), result.output_files().end()}, out);
  fs::remove(tar);
  return extracted;
}

absl::StatusOr<v1::QuantProblem> ProblemFromFlags() {
  const std::string method = absl::GetFlag(FLAGS_method);
  auto parsed = EnumFromFlag<v1::QuantMethod>(
      "method", "QUANT_METHOD_", method.empty() ? "rtn" : method,
      "rtn, gptq, dmmv, nf4, int8-blockwise, hqq", v1::QuantMethod_Parse);
  if (!parsed.ok()) return parsed.status();
  auto format = EnumFromFlag<v1::QuantFormat>("format", "QUANT_FORMAT_",
                                              absl::GetFlag(FLAGS_format), "solverd, gptq, gguf",
                                              v1::QuantFormat_Parse);
  if (!format.ok()) return format.status();
  auto gguf_type = EnumFromFlag<v1::QuantGgufType>(
      "gguf-type", "QUANT_GGUF_TYPE_", absl::GetFlag(FLAGS_gguf_type),
      "from-bits, f16, q4_k, q5_k, q6_k, q4_k_m", v1::QuantGgufType_Parse);
  if (!gguf_type.ok()) return gguf_type.status();
  v1::QuantProblem problem;
  problem.set_gguf_type(*gguf_type);
  problem.set_symmetric(absl::GetFlag(FLAGS_symmetric));
  problem.set_method(*parsed);
  problem.set_format(*format);
  problem.set_bits(absl::GetFlag(FLAGS_bits));
  problem.set_group_size(absl::GetFlag(FLAGS_group_size));
  return problem;
}

}  // namespace

absl::Status Quantize(SolverClient& client, const std::vector<std::string>& args) {
  if (args.size() != 1) {
    return absl::InvalidArgumentError(
        "usage: solverctl quantize MODEL [--method=rtn|gptq|dmmv|nf4|int8-blockwise|hqq] "
        "[--bits=4] [--group-size=128] [--symmetric] [--calibration=FILE] "
        "[--format=solverd|gptq|gguf] [--gguf-type=T] [--out=PATH]");
  }
  auto problem = ProblemFromFlags();
  if (!problem.ok()) return problem.status();
  auto model = UploadModel(client, args[0]);
  if (!model.ok()) return model.status();
  *problem->mutable_model() = *std::move(model);
  if (const std::string calibration = absl::GetFlag(FLAGS_calibration); !calibration.empty()) {
    auto file = UploadModel(client, calibration);
    if (!file.ok()) return file.status();
    *problem->mutable_calibration() = *std::move(file);
  }
  v1::JobSpec spec;
  *spec.mutable_quant() = *std::move(problem);
  auto job = RunToEnd(client, spec);
  if (!job.ok()) return job.status();
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) return absl::OkStatus();  // the summary named the output blob
  return SaveOutput(client, job->result().quant(), out);
}

absl::Status DemoQuant(SolverClient& client) {
  const QuantDemoFiles files = RandomQuantModel(absl::GetFlag(FLAGS_seed));
  auto model = client.Upload(files.model, Sha256(files.model));
  if (!model.ok()) return model.status();
  auto calibration = client.Upload(files.calibration, Sha256(files.calibration));
  if (!calibration.ok()) return calibration.status();
  auto problem = ProblemFromFlags();
  if (!problem.ok()) return problem.status();
  if (absl::GetFlag(FLAGS_method).empty()) problem->set_method(v1::QUANT_METHOD_GPTQ);
  problem->mutable_model()->set_blob_id(model->blob_id());
  problem->mutable_calibration()->set_blob_id(calibration->blob_id());
  std::printf("a random 3-layer model (%zu bytes) and its calibration inputs, uploaded\n",
              files.model.size());
  v1::JobSpec spec;
  *spec.mutable_quant() = *std::move(problem);
  auto job = RunToEnd(client, spec);
  return job.ok() ? absl::OkStatus() : job.status();
}

}  // namespace solverd::client
