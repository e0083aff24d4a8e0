#include "server/families/quant/model_source.h"

#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/blob_store.h"
#include "server/data_root.h"
#include "server/status_util.h"

namespace solverd::server {
namespace {

namespace quant = ::solverd::quant;

// Bounds one file under --data-root; the job's limit on the model's
// weights (--max_quant_model_bytes) is checked after.
constexpr int64_t kMaxFileBytes = int64_t{1} << 40;

absl::Status Prefixed(const std::string& field, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(field, ": ", s.message()));
}

// The files beside the weights that an output folder carries through, as
// transformers saves them; tokenizer.json also gives llama.cpp's vocabulary.
constexpr const char* kPassthroughFiles[] = {
    "tokenizer.json",   "tokenizer_config.json", "special_tokens_map.json",
    "tokenizer.model",  "added_tokens.json",     "vocab.json",
    "merges.txt",       "generation_config.json"};

// A checkpoint's file by name: NOT_FOUND when the checkpoint has none.
using FileOpener = std::function<absl::StatusOr<HeldBytes>(const std::string& name)>;

// A blob kept on disk is mapped, as a file under --data-root is.
absl::StatusOr<HeldBytes> FromBlob(const BlobStore& blobs, const std::string& id,
                                   const std::string& field) {
  auto path = blobs.VerifiedFile(id);
  if (!path.ok()) return Prefixed(field, path.status());
  if (!path->empty()) {
    auto mapped = MappedFile::Open(*path);
    if (!mapped.ok()) return Prefixed(field, mapped.status());
    std::shared_ptr<const MappedFile> file = *std::move(mapped);
    const std::string_view bytes = file->bytes();
    return HeldBytes{std::move(file), bytes, /*mapped=*/true};
  }
  auto blob = blobs.Get(id);
  if (!blob.ok()) return Prefixed(field, blob.status());
  std::shared_ptr<const std::string> bytes = blob->bytes;
  return HeldBytes{bytes, *bytes};
}

absl::StatusOr<HeldBytes> FromDataRoot(const PrepareContext& context, const std::string& path,
                                       const std::string& field) {
  auto mapped = MapUnderDataRoot(context.data_root, path, field, kMaxFileBytes);
  if (!mapped.ok()) return mapped.status();
  std::shared_ptr<const MappedFile> file = *std::move(mapped);
  const std::string_view bytes = file->bytes();
  return HeldBytes{std::move(file), bytes, /*mapped=*/true};
}

// The opener of a folder under --data-root.
absl::StatusOr<FileOpener> FolderOpener(const PrepareContext& context, const std::string& folder,
                                        const std::string& field) {
  auto resolved = ResolveUnderDataRoot(context.data_root, folder, field);
  if (!resolved.ok()) return resolved.status();
  std::error_code ec;
  if (!std::filesystem::is_directory(*resolved, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", folder, " is not a folder"));
  }
  return FileOpener([&context, folder, field](const std::string& name) {
    return FromDataRoot(context, absl::StrCat(folder, "/", name), field);
  });
}

// The opener of a set of named blobs.
absl::StatusOr<FileOpener> BlobsOpener(const PrepareContext& context,
                                       const v1::QuantCheckpointBlobs& files,
                                       const std::string& field) {
  std::map<std::string, std::string> ids;
  for (const v1::QuantCheckpointFile& f : files.files()) {
    if (!quant::IsPlainFileName(f.name())) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": \"", f.name(), "\" is not a file name (no folders)"));
    }
    if (!ids.emplace(f.name(), f.blob_id()).second) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": ", f.name(), " is listed twice"));
    }
  }
  return FileOpener([&context, ids = std::move(ids), field](const std::string& name)
                        -> absl::StatusOr<HeldBytes> {
    auto it = ids.find(name);
    if (it == ids.end()) return absl::NotFoundError(absl::StrCat(field, ": no file ", name));
    return FromBlob(context.blobs, it->second, absl::StrCat(field, "[", name, "]"));
  });
}

// config.json, then the shards (from the index, or model.safetensors),
// merged and checked against the config.
absl::StatusOr<QuantModelSource> ReadCheckpoint(const FileOpener& open, const std::string& field) {
  QuantModelSource out;
  auto config = open(std::string(quant::kConfigFile));
  if (!config.ok()) return config.status();
  if (absl::Status s = FromKernel(quant::ParseModelConfig(config->bytes, &out.config)); !s.ok()) {
    return Prefixed(field, s);
  }
  out.config_json = config->bytes;
  out.holders.push_back(std::move(config->holder));
  for (const char* name : kPassthroughFiles) {
    auto file = open(name);
    if (absl::IsNotFound(file.status())) continue;
    if (!file.ok()) return file.status();
    if (std::string_view(name) == "tokenizer.json") out.tokenizer_json = file->bytes;
    out.passthrough.emplace_back(name, file->bytes);
    out.holders.push_back(std::move(file->holder));
  }
  quant::ShardIndex index;
  auto index_file = open(std::string(quant::kShardIndexFile));
  const bool indexed = index_file.ok();
  if (indexed) {
    if (absl::Status s = FromKernel(quant::ParseShardIndex(index_file->bytes, &index)); !s.ok()) {
      return Prefixed(field, s);
    }
  } else if (absl::IsNotFound(index_file.status())) {
    index.files = {std::string(quant::kSingleWeightsFile)};
  } else {
    return index_file.status();
  }
  std::vector<quant::Shard> shards;
  for (const std::string& name : index.files) {
    auto shard = open(name);
    if (!shard.ok()) {
      if (!absl::IsNotFound(shard.status()) || indexed) return shard.status();
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": the checkpoint has neither ", std::string(quant::kSingleWeightsFile), " nor ",
          std::string(quant::kShardIndexFile)));
    }
    shards.push_back({name, shard->bytes});
    out.mapped = (shards.size() == 1 || out.mapped) && shard->mapped;
    out.bytes += static_cast<int64_t>(shard->bytes.size());
    out.holders.push_back(std::move(shard->holder));
  }
  absl::Status merged =
      FromKernel(quant::MergeShards(shards, indexed ? &index : nullptr, &out.weights));
  if (!merged.ok()) return Prefixed(field, merged);
  if (quant::IsLlamaFamily(out.config.model_type)) {
    // Its messages start "model: ", as PlanModel's do.
    absl::Status checked = FromKernel(quant::CheckLlamaWeights(out.config, out.weights));
    if (!checked.ok()) {
      return absl::Status(checked.code(), absl::StrCat("quant.", checked.message()));
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<HeldBytes> ReadQuantFile(const v1::QuantFile& file, const std::string& field,
                                        const PrepareContext& context) {
  switch (file.source_case()) {
    case v1::QuantFile::kBlobId:
      return FromBlob(context.blobs, file.blob_id(), field + ".blob_id");
    case v1::QuantFile::kPath:
      return FromDataRoot(context, file.path(), field + ".path");
    case v1::QuantFile::kCheckpointPath:
    case v1::QuantFile::kCheckpointBlobs:
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": must be one safetensors file (blob_id or path)"));
    default:
      return absl::InvalidArgumentError(absl::StrCat(field, ": set blob_id or path"));
  }
}

absl::StatusOr<QuantModelSource> ReadQuantModel(const v1::QuantFile& file,
                                                const PrepareContext& context) {
  const std::string field = "quant.model";
  const auto source = file.source_case();
  if (source == v1::QuantFile::SOURCE_NOT_SET) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": set blob_id, path, checkpoint_path or checkpoint_blobs"));
  }
  if (source == v1::QuantFile::kCheckpointPath) {
    const std::string where = field + ".checkpoint_path";
    auto opener = FolderOpener(context, file.checkpoint_path(), where);
    if (!opener.ok()) return opener.status();
    return ReadCheckpoint(*opener, where);
  }
  if (source == v1::QuantFile::kCheckpointBlobs) {
    const std::string where = field + ".checkpoint_blobs";
    auto opener = BlobsOpener(context, file.checkpoint_blobs(), where);
    if (!opener.ok()) return opener.status();
    return ReadCheckpoint(*opener, where);
  }
  auto bytes = ReadQuantFile(file, field, context);
  if (!bytes.ok()) return bytes.status();
  QuantModelSource out;
  out.bytes = static_cast<int64_t>(bytes->bytes.size());
  absl::Status parsed = FromKernel(quant::ParseSafetensors(bytes->bytes, &out.weights));
  if (!parsed.ok()) return Prefixed(field, parsed);
  out.holders.push_back(std::move(bytes->holder));
  out.mapped = bytes->mapped;
  return out;
}

}  // namespace solverd::server
