// llama.cpp's layout in GGUF: the Q/K row order, tokenizer.json as
// llama.cpp's vocabulary (SentencePiece-style and byte-level BPE), the
// tensor names, and the plan-time errors. (llama.cpp itself runs the files
// in tests/python/llamacpp_test.py.)
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "quant/formats/gguf_llama.h"
#include "quant/formats/gguf_vocab.h"
#include "quant/model.h"

namespace solverd::quant::internal {
namespace {

TEST(GgufLlama, RopeRowsGoFromHalvesToPairs) {
  // Two heads of four rows: Hugging Face's order is (x0, x1 | y0, y1) per
  // head, llama.cpp's (x0, y0, x1, y1).
  const std::string rows = "ABCDEFGH";
  EXPECT_EQ(PermuteRopeRows(rows, 8, 2), "ACBDEGFH");
  const std::string wide = "aaBBccDD";  // rows of two bytes, one head
  EXPECT_EQ(PermuteRopeRows(wide, 4, 1), "aaccBBDD");
}

TEST(GgufVocab, SentencePieceStyleHasByteTokensAndScores) {
  const char* json = R"({"added_tokens": [{"id": 1, "content": "<s>", "special": true}],
    "model": {"type": "BPE", "byte_fallback": true, "unk_token": "<unk>",
              "vocab": {"<unk>": 0, "<s>": 1, "<0x41>": 2, "▁the": 3}, "merges": ["▁ t"]}})";
  GgufVocab v;
  const Status s = VocabFromTokenizerJson(json, 6, &v);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(v.model, "llama");
  EXPECT_EQ(v.tokens, (std::vector<std::string>{"<unk>", "<s>", "<0x41>", "▁the", "[PAD4]",
                                                "[PAD5]"}));
  EXPECT_EQ(v.types, (std::vector<int32_t>{2, 3, 6, 1, 5, 5}));
  EXPECT_EQ(v.scores[3], -3.0f);
  EXPECT_EQ(v.unknown, 0);
  EXPECT_TRUE(v.merges.empty());
}

TEST(GgufVocab, ByteLevelBpeKeepsItsMergesAndRefusesHoles) {
  GgufVocab v;
  ASSERT_TRUE(VocabFromTokenizerJson(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1,
      "ab": 2}, "merges": ["a b", ["ab", "b"]]}, "added_tokens": [{"id": 3,
      "content": "<|end|>", "special": false}]})", 4, &v).ok());
  EXPECT_EQ(v.model, "gpt2");
  EXPECT_EQ(v.merges, (std::vector<std::string>{"a b", "ab b"}));
  EXPECT_EQ(v.types[3], 4);  // user-defined
  const Status big = VocabFromTokenizerJson(
      R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 7}}})", 4, &v);
  EXPECT_EQ(big.message(), "tokenizer.json: token \"b\" has id 7, outside the model's "
                           "vocab_size 4");
  const Status twice = VocabFromTokenizerJson(
      R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}}})", 4, &v);
  EXPECT_EQ(twice.message(), "tokenizer.json: id 0 is both \"a\" and \"b\"");
  EXPECT_NE(VocabFromTokenizerJson(R"({"model": {"type": "Unigram", "vocab": []}})", 4, &v)
                .message()
                .find("only BPE tokenizers"),
            std::string::npos);
}

ModelConfig TinyLlama() {
  ModelConfig c;
  c.model_type = "llama";
  c.vocab_size = 4;
  c.hidden_size = 32;
  c.intermediate_size = 32;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 16;
  return c;
}

TEST(GgufLlama, NamesAndPlanErrors) {
  SafetensorsWriter w;
  w.Add("model.layers.0.self_attn.k_proj.weight", DType::kF32, {16, 32},
        FloatsToBytes(std::vector<float>(16 * 32, 1.0f)));
  w.Add("model.layers.0.input_layernorm.weight", DType::kF16, {32},
        HalvesToBytes(std::vector<float>(32, 1.0f)));
  const std::string file = w.Finish();
  ModelInput input;
  ASSERT_TRUE(ParseSafetensors(file, &input.weights).ok());
  input.config = TinyLlama();
  const std::string tokenizer =
      R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "d": 3}, "merges": []}})";
  input.tokenizer_json = tokenizer;
  std::shared_ptr<const LlamaGgufLayout> layout;
  ASSERT_TRUE(
      LlamaGgufLayout::Create(input.config, tokenizer, input.weights, &layout).ok());
  GgufTensorPlan plan;
  ASSERT_TRUE(layout->Map("model.layers.0.self_attn.k_proj.weight", &plan).ok());
  EXPECT_EQ(plan.name, "blk.0.attn_k.weight");
  EXPECT_EQ(plan.rope_heads, 1);
  ASSERT_TRUE(layout->Map("model.layers.0.input_layernorm.weight", &plan).ok());
  EXPECT_EQ(plan.name, "blk.0.attn_norm.weight");
  EXPECT_TRUE(plan.to_f32);
  EXPECT_EQ(layout->Map("model.layers.1.mlp.up_proj.weight", &plan).message(),
            "export: tensor \"model.layers.1.mlp.up_proj.weight\" has no place in llama.cpp's "
            "llama layout");  // block 1 of a one-block model

  ModelOptions options;
  options.format = ExportFormat::kGguf;
  options.layer.symmetric = true;
  options.layer.group_size = 32;
  ModelPlan planned;
  ASSERT_TRUE(PlanModel(input, "", options, &planned).ok());
  ASSERT_NE(planned.gguf_layout, nullptr);
  input.tokenizer_json = "";
  EXPECT_EQ(PlanModel(input, "", options, &planned).message(),
            "export: llama.cpp needs the vocabulary: the checkpoint has no tokenizer.json");
  input.config.model_type = "gpt2";  // another architecture: names kept, and why
  ASSERT_TRUE(PlanModel(input, "", options, &planned).ok());
  EXPECT_EQ(planned.gguf_layout, nullptr);
  ASSERT_EQ(planned.notes.size(), 1u);
  EXPECT_NE(planned.notes[0].find("not gpt2"), std::string::npos) << planned.notes[0];
}

TEST(GgufF16, QuantizesNothingAndTakesNoAllocation) {
  SafetensorsWriter w;
  w.Add("fc.weight", DType::kBF16, {4, 32}, std::string(4 * 32 * 2, '\x3f'));
  w.Add("norm.weight", DType::kF16, {32}, HalvesToBytes(std::vector<float>(32, 1.0f)));
  const std::string file = w.Finish();
  ModelOptions options;
  options.format = ExportFormat::kGguf;
  options.gguf_type = GgufType::kF16;
  ModelPlan plan;
  ASSERT_TRUE(PlanModel(file, "", options, &plan).ok());
  EXPECT_TRUE(plan.selected.empty());
  ModelResult result;
  ASSERT_TRUE(QuantizeModel(Device::Cpu(), nullptr, plan, options, nullptr, nullptr, &result).ok());
  EXPECT_TRUE(result.layers.empty());
  EXPECT_EQ(result.copied_tensors, 2);
  // fc in F16 (4 x 32 x 2 bytes) and the norm in F32 (32 x 4) after the header.
  EXPECT_EQ(result.file.compare(0, 4, "GGUF"), 0);
  EXPECT_GE(result.file.size(), 4u * 32 * 2 + 32 * 4);
  options.target_bits = 4;
  EXPECT_EQ(PlanModel(file, "", options, &plan).message(),
            "gguf_type: F16 quantizes nothing, so it takes no bit allocation");
}

}  // namespace
}  // namespace solverd::quant::internal
