// Hugging Face checkpoint folders: the JSON they are written in, the shard
// index, merging shards into one model (the same quantized output as the
// single file), config.json's Llama hyperparameters checked against the
// tensors, and the default selection (lm_head, embeddings and norms kept).
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "quant/formats/checkpoint.h"
#include "quant/formats/gptq_checkpoint.h"
#include "quant/formats/json.h"
#include "quant/formats/safetensors.h"
#include "quant/model.h"
#include "quant_test_util.h"

namespace solverd::quant {
namespace {

TEST(Json, NumbersAreIntegersOrDoubles) {
  JsonValue v;
  EXPECT_FALSE(ParseJson("1e400", &v).ok()) << "out of a double's range";
  ASSERT_TRUE(ParseJson(R"([0, -12, 1e-05, 10000.0, 2.5E+3, 9223372036854775807, 1e30])", &v)
                  .ok());
  ASSERT_EQ(v.array.size(), 7u);
  EXPECT_EQ(v.array[0].kind, JsonValue::Kind::kInteger);
  EXPECT_EQ(v.array[1].integer, -12);
  EXPECT_EQ(v.array[2].kind, JsonValue::Kind::kNumber);
  EXPECT_DOUBLE_EQ(v.array[2].number, 1e-5);
  EXPECT_EQ(v.array[3].kind, JsonValue::Kind::kNumber);  // a fraction, even .0
  EXPECT_DOUBLE_EQ(v.array[3].number, 10000.0);
  EXPECT_DOUBLE_EQ(v.array[4].number, 2500.0);
  EXPECT_EQ(v.array[5].integer, INT64_MAX);
  EXPECT_EQ(v.array[6].kind, JsonValue::Kind::kNumber);
  for (const char* bad : {"01", "-", "1.", ".5", "1e", "1e+", "--1", "0x10"}) {
    EXPECT_FALSE(ParseJson(bad, &v).ok()) << bad;
  }
}

constexpr const char* kLlamaConfig = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 16,
  "hidden_size": 8, "intermediate_size": 12, "num_hidden_layers": 2,
  "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 64,
  "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": false,
  "torch_dtype": "float16", "rope_scaling": null})";

struct Tensor {
  std::string name;
  std::vector<int64_t> shape;
};

// A two-block Llama of kLlamaConfig's shapes, in transformers' order.
std::vector<Tensor> LlamaTensors() {
  std::vector<Tensor> t = {{"model.embed_tokens.weight", {16, 8}}};
  for (int layer = 0; layer < 2; ++layer) {
    const std::string b = "model.layers." + std::to_string(layer) + ".";
    for (const Tensor& x : std::vector<Tensor>{{"input_layernorm.weight", {8}},
                                               {"mlp.down_proj.weight", {8, 12}},
                                               {"mlp.gate_proj.weight", {12, 8}},
                                               {"mlp.up_proj.weight", {12, 8}},
                                               {"post_attention_layernorm.weight", {8}},
                                               {"self_attn.k_proj.weight", {4, 8}},
                                               {"self_attn.o_proj.weight", {8, 8}},
                                               {"self_attn.q_proj.weight", {8, 8}},
                                               {"self_attn.v_proj.weight", {4, 8}}}) {
      t.push_back({b + x.name, x.shape});
    }
  }
  t.push_back({"model.norm.weight", {8}});
  t.push_back({"lm_head.weight", {16, 8}});
  return t;
}

// Tensors [begin, end) of `tensors` as one safetensors file.
std::string File(const std::vector<Tensor>& tensors, size_t begin, size_t end) {
  SafetensorsWriter w;
  w.AddMetadata("format", "pt");
  for (size_t k = begin; k < end; ++k) {
    int64_t n = 1;
    for (const int64_t d : tensors[k].shape) n *= d;
    w.Add(tensors[k].name, DType::kF16, tensors[k].shape,
          HalvesToBytes(Random(n, static_cast<uint32_t>(k + 1))));
  }
  return w.Finish();
}

std::string Index(const std::vector<Tensor>& tensors, size_t split) {
  std::string map;
  for (size_t k = 0; k < tensors.size(); ++k) {
    map += (k == 0 ? "" : ", ") + JsonQuote(tensors[k].name) + ": " +
           (k < split ? "\"model-00001-of-00002.safetensors\""
                      : "\"model-00002-of-00002.safetensors\"");
  }
  return R"({"metadata": {"total_size": 1234}, "weight_map": {)" + map + "}}";
}

struct Sharded {
  std::vector<Tensor> tensors = LlamaTensors();
  size_t split = 9;  // the first shard ends inside block 0
  std::string one = File(tensors, 0, split), two = File(tensors, split, tensors.size());
  std::vector<Shard> shards{{"model-00001-of-00002.safetensors", one},
                            {"model-00002-of-00002.safetensors", two}};

  // The checkpoint as a model to plan, with its config.
  ModelInput Input() {
    ModelInput input;
    EXPECT_TRUE(MergeShards(shards, nullptr, &input.weights).ok());
    EXPECT_TRUE(ParseModelConfig(kLlamaConfig, &input.config).ok());
    input.config_json = kLlamaConfig;
    return input;
  }
};

TEST(Checkpoint, ShardsMergeIntoTheSameQuantizedModelAsOneFile) {
  Sharded s;
  ShardIndex index;
  ASSERT_TRUE(ParseShardIndex(Index(s.tensors, s.split), &index).ok());
  EXPECT_EQ(index.files, (std::vector<std::string>{"model-00001-of-00002.safetensors",
                                                   "model-00002-of-00002.safetensors"}));
  SafetensorsFile merged;
  const Status m = MergeShards(s.shards, &index, &merged);
  ASSERT_TRUE(m.ok()) << m.message();
  ASSERT_EQ(merged.tensors.size(), s.tensors.size());
  EXPECT_EQ(merged.tensors[s.split].shard, 1);
  ModelConfig config;
  ASSERT_TRUE(ParseModelConfig(kLlamaConfig, &config).ok());
  EXPECT_TRUE(CheckLlamaWeights(config, merged).ok());

  ModelOptions options;
  options.layer.bits = 4;
  options.layer.group_size = 4;
  options.exclude = DefaultExcludes();
  ModelPlan from_shards, from_file;
  ASSERT_TRUE(PlanModel(ModelInput{merged}, "", options, &from_shards).ok());
  const std::string whole = File(s.tensors, 0, s.tensors.size());
  ASSERT_TRUE(PlanModel(whole, "", options, &from_file).ok());
  EXPECT_EQ(from_shards.selected.size(), 14u) << "7 projections per block; lm_head kept";
  ModelResult a, b;
  ASSERT_TRUE(QuantizeModel(Device::Cpu(), nullptr, from_shards, options, nullptr, nullptr, &a)
                  .ok());
  ASSERT_TRUE(QuantizeModel(Device::Cpu(), nullptr, from_file, options, nullptr, nullptr, &b)
                  .ok());
  EXPECT_EQ(a.file, b.file);

  options.include = {"model.layers.*", "lm_head.weight"};  // lm_head named: quantized
  ASSERT_TRUE(PlanModel(ModelInput{merged}, "", options, &from_shards).ok());
  EXPECT_EQ(from_shards.selected.size(), 15u);
  EXPECT_EQ(from_shards.selected.back().name, "lm_head.weight");
}

// name -> bytes of a ustar archive, in order.
std::vector<std::pair<std::string, std::string>> Untar(const std::string& tar) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t at = 0;
  while (at + 512 <= tar.size() && tar[at] != '\0') {
    const std::string name(tar.c_str() + at);
    EXPECT_EQ(tar.substr(at + 257, 5), "ustar");
    unsigned sum = 0;
    for (size_t i = 0; i < 512; ++i) {
      sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(tar[at + i]);
    }
    EXPECT_EQ(std::stoul(tar.substr(at + 148, 6), nullptr, 8), sum) << name;
    const size_t size = std::stoul(tar.substr(at + 124, 11), nullptr, 8);
    out.emplace_back(name, tar.substr(at + 512, size));
    at += 512 + (size + 511) / 512 * 512;
  }
  return out;
}

TEST(Checkpoint, GptqOutputIsTheCheckpointFolderInATar) {
  Sharded s;
  ModelInput input = s.Input();
  const std::string tokenizer_config = R"({"model_max_length": 64})";
  input.passthrough = {{"tokenizer_config.json", tokenizer_config}};
  ModelOptions options;
  options.format = ExportFormat::kGptq;
  options.layer.bits = 8;  // words of 4 codes: every dimension here is a multiple of 4
  options.layer.group_size = 4;
  options.layer.symmetric = true;
  options.max_shard_bytes = 300;  // several shards
  ModelPlan plan;
  const Status planned = PlanModel(input, "", options, &plan);
  ASSERT_TRUE(planned.ok()) << planned.message();
  ModelResult result;
  const Status q = QuantizeModel(Device::Cpu(), nullptr, plan, options, nullptr, nullptr, &result);
  ASSERT_TRUE(q.ok()) << q.message();
  const auto members = Untar(result.file);
  ASSERT_EQ(members.size(), result.output_files.size());
  ASSERT_GE(members.size(), 6u);
  EXPECT_EQ(members[0].first, "config.json");
  JsonValue config;
  ASSERT_TRUE(ParseJson(members[0].second, &config).ok()) << members[0].second;
  const JsonValue* qc = JsonFind(config, "quantization_config");
  ASSERT_NE(qc, nullptr);
  EXPECT_EQ(JsonFind(*qc, "quant_method")->string, "gptq");
  EXPECT_EQ(JsonFind(*qc, "bits")->integer, 8);
  EXPECT_EQ(JsonFind(*qc, "group_size")->integer, 4);
  EXPECT_TRUE(JsonFind(*qc, "sym")->boolean);
  EXPECT_EQ(JsonFind(config, "hidden_size")->integer, 8) << "the source's members stay";
  EXPECT_EQ(members[1].first, "quantize_config.json");
  EXPECT_EQ(members.back(), (std::pair<std::string, std::string>{"tokenizer_config.json",
                                                                  tokenizer_config}));
  // The shards hold, between them, exactly the tensors of the one file.
  ShardIndex index;
  const auto& index_member = members[members.size() - 2];
  ASSERT_EQ(index_member.first, "model.safetensors.index.json");
  ASSERT_TRUE(ParseShardIndex(index_member.second, &index).ok());
  std::vector<Shard> shards;
  for (size_t k = 2; k + 2 < members.size(); ++k) {
    EXPECT_EQ(members[k].first, index.files[k - 2]);
    shards.push_back({members[k].first, members[k].second});
  }
  EXPECT_GT(shards.size(), 2u);
  SafetensorsFile from_shards, whole;
  ASSERT_TRUE(MergeShards(shards, &index, &from_shards).ok());
  options.max_shard_bytes = int64_t{1} << 40;
  ASSERT_TRUE(QuantizeModel(Device::Cpu(), nullptr, plan, options, nullptr, nullptr, &result).ok());
  const auto one = Untar(result.file);
  ASSERT_EQ(one[2].first, "model.safetensors");
  ASSERT_TRUE(ParseSafetensors(one[2].second, &whole).ok());
  ASSERT_EQ(from_shards.tensors.size(), whole.tensors.size());
  for (const TensorEntry& t : whole.tensors) {
    const TensorEntry* other = from_shards.Find(t.name);
    ASSERT_NE(other, nullptr) << t.name;
    EXPECT_EQ(from_shards.Bytes(*other), whole.Bytes(t)) << t.name;
  }
  EXPECT_NE(whole.Find("model.layers.0.self_attn.q_proj.qweight"), nullptr);
}

// Written to a file as it is produced, the output is the same bytes as in
// memory, and the tensors waiting for the header leave nothing behind.
TEST(Checkpoint, OutputOnDiskIsTheFileInMemory) {
  Sharded s;
  const ModelInput input = s.Input();
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("quant-out-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  // Removed with what it holds even when the test fails.
  const std::unique_ptr<const std::filesystem::path, void (*)(const std::filesystem::path*)>
      cleanup(&dir, [](const std::filesystem::path* d) { std::filesystem::remove_all(*d); });
  for (const ExportFormat format : {ExportFormat::kSolverd, ExportFormat::kGptq}) {
    ModelOptions options;
    options.format = format;
    options.layer.bits = 8;
    options.layer.group_size = 4;
    options.layer.symmetric = true;
    options.max_shard_bytes = 300;
    ModelPlan plan;
    ASSERT_TRUE(PlanModel(input, "", options, &plan).ok());
    ModelResult in_memory, on_disk;
    ASSERT_TRUE(
        QuantizeModel(Device::Cpu(), nullptr, plan, options, nullptr, nullptr, &in_memory).ok());
    options.output_path = (dir / "out").string();
    const Status q =
        QuantizeModel(Device::Cpu(), nullptr, plan, options, nullptr, nullptr, &on_disk);
    ASSERT_TRUE(q.ok()) << q.message();
    EXPECT_TRUE(on_disk.file.empty());
    std::ifstream file(options.output_path, std::ios::binary);
    const std::string written((std::istreambuf_iterator<char>(file)),
                              std::istreambuf_iterator<char>());
    EXPECT_EQ(written, in_memory.file) << ExportFormatName(format);
    EXPECT_EQ(on_disk.file_bytes, static_cast<int64_t>(written.size()));
    EXPECT_EQ(on_disk.output_files, in_memory.output_files);
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir),
                            std::filesystem::directory_iterator()), 1);
  }
  {  // a folder that does not exist
    ModelOptions options;
    options.layer.bits = 8;
    options.output_path = (dir / "no-such-folder" / "out").string();
    ModelPlan plan;
    ASSERT_TRUE(PlanModel(input, "", options, &plan).ok());
    ModelResult result;
    const Status q = QuantizeModel(Device::Cpu(), nullptr, plan, options, nullptr, nullptr,
                                   &result);
    EXPECT_EQ(q.code(), StatusCode::kInternal);
    EXPECT_NE(q.message().find("no-such-folder"), std::string::npos) << q.message();
  }
}

void ExpectMergeError(const std::vector<Shard>& shards, const std::string& index_json,
                      const std::string& fragment) {
  ShardIndex index;
  SafetensorsFile merged;
  Status s = ParseShardIndex(index_json, &index);
  if (s.ok()) s = MergeShards(shards, &index, &merged);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << fragment;
  EXPECT_NE(s.message().find(fragment), std::string::npos) << s.message();
}

TEST(Checkpoint, IndexAndShardErrorsNameTheFileAndTensor) {
  Sharded s;
  std::string moved = Index(s.tensors, s.split + 1);  // one tensor put in the wrong shard
  ExpectMergeError(s.shards, moved,
                   "model.safetensors.index.json: tensor \"model.layers.0.self_attn.v_proj.weight\" "
                   "is not in model-00001-of-00002.safetensors");
  std::string missing = Index(s.tensors, s.split);
  missing.replace(missing.find("\"lm_head.weight\""), 16, "\"lm_head.bias\"");
  ExpectMergeError(s.shards, missing, "tensor \"lm_head.bias\" is not in");
  ExpectMergeError(s.shards, R"({"weight_map": {"a": "../model.safetensors"}})",
                   "must name a file in the checkpoint's folder");
  ExpectMergeError(s.shards, R"({"weight_map": {}})", "weight_map must be a non-empty object");
  std::vector<Shard> twice = {s.shards[0], {"copy.safetensors", s.one}};
  SafetensorsFile merged;
  const Status dup = MergeShards(twice, nullptr, &merged);
  EXPECT_NE(dup.message().find("copy.safetensors: tensor \"model.embed_tokens.weight\" is also "
                               "in model-00001-of-00002.safetensors"),
            std::string::npos)
      << dup.message();
  std::vector<Shard> cut = {s.shards[0], {"model-00002-of-00002.safetensors", s.two.substr(0, 9)}};
  const Status truncated = MergeShards(cut, nullptr, &merged);
  EXPECT_EQ(truncated.message().rfind("model-00002-of-00002.safetensors: ", 0), 0u)
      << truncated.message();
}

TEST(Checkpoint, ConfigIsCheckedAgainstTheTensors) {
  ModelConfig c;
  ASSERT_TRUE(ParseModelConfig(kLlamaConfig, &c).ok());
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.head_dim, 4);
  EXPECT_EQ(c.num_key_value_heads, 1);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);

  std::string no_width = kLlamaConfig;
  no_width.replace(no_width.find("\"hidden_size\": 8,"), 17, "");
  Status s = ParseModelConfig(no_width, &c);
  EXPECT_NE(s.message().find("config.json: hidden_size must be a positive integer"),
            std::string::npos)
      << s.message();
  std::string odd_kv = kLlamaConfig;
  odd_kv.replace(odd_kv.find("\"num_key_value_heads\": 1"), 24, "\"num_key_value_heads\": 3");
  EXPECT_NE(ParseModelConfig(odd_kv, &c).message().find("num_key_value_heads must divide"),
            std::string::npos);
  // Another architecture: only its model_type is read.
  ASSERT_TRUE(ParseModelConfig(R"({"model_type": "gpt2", "n_embd": 768})", &c).ok());
  EXPECT_EQ(c.model_type, "gpt2");
  EXPECT_FALSE(IsLlamaFamily(c.model_type));

  ASSERT_TRUE(ParseModelConfig(kLlamaConfig, &c).ok());
  std::vector<Tensor> tensors = LlamaTensors();
  tensors.erase(tensors.begin() + 3);  // block 0's gate_proj
  SafetensorsFile file;
  std::string bytes = File(tensors, 0, tensors.size());
  ASSERT_TRUE(ParseSafetensors(bytes, &file).ok());
  EXPECT_EQ(CheckLlamaWeights(c, file).message(),
            "model: the checkpoint has no tensor \"model.layers.0.mlp.gate_proj.weight\"");
  tensors = LlamaTensors();
  tensors[7].shape = {8, 4};  // block 0's o_proj transposed
  bytes = File(tensors, 0, tensors.size());
  ASSERT_TRUE(ParseSafetensors(bytes, &file).ok());
  EXPECT_EQ(CheckLlamaWeights(c, file).message(),
            "model: tensor \"model.layers.0.self_attn.o_proj.weight\" must be a float [8, 8] as "
            "config.json gives it");
}

}  // namespace
}  // namespace solverd::quant
