// Calibration from text: the word splits of GPT-2, Llama 3 and Qwen2 on
// text that exercises each alternative of their regexes, BPE merges by
// rank (and ignore_merges), SentencePiece-style vocabularies (Llama 2's
// normalizer, Metaspace, byte fallback, <s> before a sequence), the merge
// heap against the plain quadratic loop, and every tokenizer.json it
// refuses, saying why.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "quant/formats/bpe_merges.h"
#include "quant/formats/bpe_tokenizer.h"
#include "quant/sequential_calibration.h"

namespace solverd::quant {
namespace {

std::vector<std::string> Words(std::string_view text, WordSplit split) {
  std::vector<std::pair<size_t, size_t>> ranges;
  EXPECT_TRUE(SplitWords(text, split, &ranges).ok());
  std::vector<std::string> words;
  for (const auto& [begin, end] : ranges) words.emplace_back(text.substr(begin, end - begin));
  return words;
}

using Strings = std::vector<std::string>;

TEST(SplitWords, AsEachRegexSplits) {
  const std::string text = "Hello world's 12345\n\n  end(x)";
  EXPECT_EQ(Words(text, WordSplit::kGpt2),
            (Strings{"Hello", " world", "'s", " 12345", "\n\n ", " end", "(", "x", ")"}));
  EXPECT_EQ(Words(text, WordSplit::kLlama3),
            (Strings{"Hello", " world", "'s", " ", "123", "45", "\n\n", " ", " end", "(x", ")"}));
  EXPECT_EQ(Words(text, WordSplit::kQwen2), (Strings{"Hello", " world", "'s", " ", "1", "2", "3",
                                                     "4", "5", "\n\n", " ", " end", "(x", ")"}));
  EXPECT_EQ(Words("a  b\n c'S ", WordSplit::kGpt2),
            (Strings{"a", " ", " b", "\n", " c", "'", "S", " "}));
  EXPECT_EQ(Words("a  b\n c'S ", WordSplit::kLlama3),
            (Strings{"a", " ", " b", "\n", " c", "'S", " "}));
  EXPECT_EQ(Words("héllo wörld", WordSplit::kGpt2), (Strings{"héllo", " wörld"}));
  EXPECT_EQ(Words("ab", WordSplit::kNone), (Strings{"ab"}));
  std::vector<std::pair<size_t, size_t>> ranges;
  EXPECT_EQ(SplitWords("ok\xC3", WordSplit::kGpt2, &ranges).message(),
            "invalid UTF-8 at byte 2");
}

// A byte-level vocabulary of a few letters, space as GPT-2's U+0120.
std::string Tokenizer(const std::string& extra_vocab = "", const std::string& model_extra = "",
                      const std::string& pre = R"({"type": "ByteLevel"})",
                      const std::string& normalizer = "null") {
  return R"({"normalizer": )" + normalizer + R"(, "pre_tokenizer": )" + pre +
         R"(, "model": {"type": "BPE")" + model_extra + R"(, "vocab": {
      "h": 0, "e": 1, "l": 2, "o": 3, "\u0120": 4, "w": 5, "r": 6, "d": 7, "he": 8, "ll": 9,
      "hell": 10, "hello": 11, "\u0120w": 12, "\u0120wo": 13, "or": 14)" + extra_vocab + R"(},
      "merges": ["h e", "l l", "he ll", "hell o", "\u0120 w", "\u0120w o", "o r"]}})";
}

TEST(BpeTokenizer, MergesLowestRankFirst) {
  BpeTokenizer tokenizer;
  ASSERT_TRUE(BpeTokenizer::Parse(Tokenizer(), 16, &tokenizer).ok());
  std::vector<int32_t> ids;
  ASSERT_TRUE(tokenizer.Encode("hello world", &ids).ok());
  // "hello": h e -> he, l l -> ll, he ll -> hell, hell o -> hello.
  // " world": Ġ w -> Ġw (rank 4) before o r (6), then Ġw o -> Ġwo; "Ġwo r" is no merge.
  EXPECT_EQ(ids, (std::vector<int32_t>{11, 13, 6, 2, 7}));
  const Status missing = tokenizer.Encode("hello z", &ids);
  EXPECT_EQ(missing.message(), "tokenizer.json: the vocabulary has no token \"z\" for a byte "
                               "of the word \" z\"");
}

TEST(BpeTokenizer, IgnoreMergesTakesAWholeWordInTheVocabulary) {
  BpeTokenizer tokenizer;
  ASSERT_TRUE(BpeTokenizer::Parse(Tokenizer(R"(, "\u0120world": 15)",
                                            R"(, "ignore_merges": true)"),
                                  16, &tokenizer)
                  .ok());
  std::vector<int32_t> ids;
  ASSERT_TRUE(tokenizer.Encode("hello world", &ids).ok());
  EXPECT_EQ(ids, (std::vector<int32_t>{11, 15}));
}

TEST(BpeTokenizer, PrefixSpaceAndNoRegex) {
  BpeTokenizer tokenizer;
  ASSERT_TRUE(BpeTokenizer::Parse(
                  Tokenizer("", "", R"({"type": "ByteLevel", "add_prefix_space": true,
                                        "use_regex": false})"),
                  16, &tokenizer)
                  .ok());
  std::vector<int32_t> ids;
  ASSERT_TRUE(tokenizer.Encode("wor", &ids).ok());  // " wor", one word
  EXPECT_EQ(ids, (std::vector<int32_t>{13, 6}));
}

TEST(BpeTokenizer, RefusesWhatItCannotApplySayingWhy) {
  BpeTokenizer tokenizer;
  const auto parse = [&](const std::string& json) {
    return BpeTokenizer::Parse(json, 16, &tokenizer).message();
  };
  EXPECT_EQ(parse(Tokenizer("", R"(, "byte_fallback": true)")),
            "tokenizer.json: pre_tokenizer \"ByteLevel\" is not one the server applies to a "
            "SentencePiece-style vocabulary (none, or Metaspace): send calibration_tokens "
            "instead");
  EXPECT_EQ(parse(Tokenizer("", "", R"({"type": "ByteLevel"})",
                            R"({"type": "Replace", "pattern": {"Regex": " +"}, "content": " "})")),
            "tokenizer.json: normalizer \"Replace\" is not applied by the server (NFC, Prepend, "
            "Replace of a string): send calibration_tokens instead");
  EXPECT_EQ(parse(Tokenizer(R"(, "x": 15)", "").replace(
                Tokenizer(R"(, "x": 15)", "").find("\"o r\""), 5, "\"o x\"")),
            "tokenizer.json: model.merges[6]: \"o x\" names or makes a token that is not in the "
            "vocabulary");
  EXPECT_EQ(parse(Tokenizer("", "", R"({"type": "Metaspace"})")),
            "tokenizer.json: pre_tokenizer \"Metaspace\" is not one the server applies "
            "(ByteLevel, or Llama 3's or Qwen2's Split then ByteLevel): send calibration_tokens "
            "instead");
  EXPECT_EQ(parse(Tokenizer("", "", R"({"type": "ByteLevel"})", R"({"type": "Lowercase"})")),
            "tokenizer.json: normalizer \"Lowercase\" is not applied by the server (NFC, "
            "Prepend, Replace of a string): send calibration_tokens instead");
  const std::string other_regex = R"({"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": "\\s+"}},
      {"type": "ByteLevel", "use_regex": false}]})";
  EXPECT_NE(parse(Tokenizer("", "", other_regex)).find("pre_tokenizer \"Sequence\" is not one"),
            std::string::npos);
  const std::string llama3 = R"({"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|)"
      R"([^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|)"
      R"(\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
       "behavior": "Isolated", "invert": false},
      {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})";
  EXPECT_EQ(parse(Tokenizer("", "", llama3, R"({"type": "NFC"})")), "") << "Llama 3's applies";
}

// The quadratic loop the heap replaces: merge the leftmost pair of lowest
// rank, again and again.
std::vector<int32_t> MergeByScanning(std::vector<int32_t> s,
                                     const std::map<std::pair<int32_t, int32_t>,
                                                    std::pair<int, int32_t>>& merges) {
  for (;;) {
    size_t best = s.size();
    int best_rank = 0;
    for (size_t k = 0; k + 1 < s.size(); ++k) {
      const auto m = merges.find({s[k], s[k + 1]});
      if (m != merges.end() && (best == s.size() || m->second.first < best_rank)) {
        best = k;
        best_rank = m->second.first;
      }
    }
    if (best == s.size()) return s;
    s[best] = merges.at({s[best], s[best + 1]}).second;
    s.erase(s.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
}

TEST(BpeMerges, MergesAsTheQuadraticLoopDoes) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    // Tokens 0..3 are characters; each merge makes a new token.
    BpeMerges heap;
    std::map<std::pair<int32_t, int32_t>, std::pair<int, int32_t>> table;
    int32_t next = 4;
    for (int rank = 0; rank < 12; ++rank) {
      const int32_t a = static_cast<int32_t>(rng() % next), b = static_cast<int32_t>(rng() % next);
      if (table.count({a, b}) > 0) continue;
      table[{a, b}] = {rank, next};
      heap.Add(a, b, next++);
    }
    std::vector<int32_t> word(rng() % 40);
    for (int32_t& c : word) c = static_cast<int32_t>(rng() % 4);
    std::vector<int32_t> merged = word;
    heap.Apply(&merged);
    EXPECT_EQ(merged, MergeByScanning(word, table)) << "trial " << trial;
  }
}

// A SentencePiece-style vocabulary as Llama 2's tokenizer.json has it:
// <unk> <s> </s>, the 256 <0xNN> tokens (ids 3..258), then pieces.
std::string SentencePiece(const std::string& normalizer, const std::string& pre) {
  std::string bytes;
  for (int b = 0; b < 256; ++b) {
    char name[16];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    bytes += ", \"" + std::string(name) + "\": " + std::to_string(3 + b);
  }
  return R"({"normalizer": )" + normalizer + R"(, "pre_tokenizer": )" + pre + R"(,
    "post_processor": {"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                 {"Sequence": {"id": "A", "type_id": 0}}],
      "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
    "model": {"type": "BPE", "byte_fallback": true, "fuse_unk": true, "unk_token": "<unk>",
      "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2)" + bytes + R"(,
        "\u2581": 259, "h": 260, "e": 261, "l": 262, "o": 263, "w": 264, "r": 265, "d": 266,
        "\u2581h": 267, "ll": 268, "\u2581he": 269, "\u2581hell": 270, "\u2581hello": 271,
        "or": 272, "\u2581w": 273, "\u2581wor": 274},
      "merges": ["\u2581 h", "l l", "\u2581h e", "\u2581he ll", "\u2581hell o", "o r",
                 "\u2581 w", "\u2581w or"]}})";
}

constexpr char kLlama2Normalizer[] = R"({"type": "Sequence", "normalizers": [
    {"type": "Prepend", "prepend": "\u2581"},
    {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]})";

std::vector<int32_t> Encode(const BpeTokenizer& tokenizer, std::string_view text) {
  std::vector<int32_t> ids;
  const Status s = tokenizer.Encode(text, &ids);
  EXPECT_TRUE(s.ok()) << s.message();
  return ids;
}

TEST(BpeTokenizer, SentencePieceAsLlama2sTokenizerJson) {
  BpeTokenizer tokenizer;
  const Status parsed =
      BpeTokenizer::Parse(SentencePiece(kLlama2Normalizer, "null"), 280, &tokenizer);
  ASSERT_TRUE(parsed.ok()) << parsed.message();
  EXPECT_EQ(tokenizer.sequence_start(), (std::vector<int32_t>{1}));
  // "▁hello▁world": ▁hello; ▁ w -> ▁w, o r -> or, ▁w or -> ▁wor; l; d.
  EXPECT_EQ(Encode(tokenizer, "hello world"), (std::vector<int32_t>{271, 274, 262, 266}));
  // Two spaces: the first ▁ stays alone. é is not a piece: its bytes C3 A9.
  EXPECT_EQ(Encode(tokenizer, "he  wé"),
            (std::vector<int32_t>{269, 259, 273, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(Encode(tokenizer, ""), (std::vector<int32_t>{}));
}

TEST(BpeTokenizer, SentencePieceWithAMetaspacePreTokenizer) {
  BpeTokenizer split, whole, never;
  const std::string pre = R"({"type": "Metaspace", "replacement": "\u2581",
                              "prepend_scheme": "first", "split": )";
  ASSERT_TRUE(BpeTokenizer::Parse(SentencePiece("null", pre + "true}"), 280, &split).ok());
  ASSERT_TRUE(BpeTokenizer::Parse(SentencePiece("null", pre + "false}"), 280, &whole).ok());
  ASSERT_TRUE(BpeTokenizer::Parse(
                  SentencePiece("null", R"({"type": "Metaspace", "prepend_scheme": "never"})"),
                  280, &never)
                  .ok());
  for (const BpeTokenizer* t : {&split, &whole}) {
    EXPECT_EQ(Encode(*t, "hello world"), (std::vector<int32_t>{271, 274, 262, 266}));
  }
  // No ▁ prepended: "hello" is h e ll o (only "▁h e" merges h).
  EXPECT_EQ(Encode(never, "hello"), (std::vector<int32_t>{260, 261, 268, 263}));
  // Split before each ▁: "▁h", "▁", "▁e" (no "▁ e" merge).
  EXPECT_EQ(Encode(split, "h  e"), (std::vector<int32_t>{267, 259, 259, 261}));
}

TEST(BpeTokenizer, UnknownCharactersWithoutByteTokensFuse) {
  // Without <0xNN> tokens a character outside the vocabulary is <unk>, and
  // a run of them one <unk> (fuse_unk).
  std::string json = SentencePiece(kLlama2Normalizer, "null");
  for (int b = 0; b < 256; ++b) {
    char name[32];
    std::snprintf(name, sizeof(name), ", \"<0x%02X>\": %d", b, 3 + b);
    json.erase(json.find(name), std::strlen(name));
  }
  BpeTokenizer tokenizer;
  ASSERT_TRUE(BpeTokenizer::Parse(json, 280, &tokenizer).ok());
  EXPECT_EQ(Encode(tokenizer, "héé"), (std::vector<int32_t>{267, 0}));
  const std::string no_unknown = json.replace(json.find(R"("unk_token": "<unk>")"), 20,
                                              R"("unk_token": null)");
  ASSERT_TRUE(BpeTokenizer::Parse(no_unknown, 280, &tokenizer).ok());
  std::vector<int32_t> ids;
  EXPECT_EQ(tokenizer.Encode("hé", &ids).message(),
            "tokenizer.json: the vocabulary has no token for \"é\", no <0xNN> tokens for its "
            "bytes and no unk_token");
}

TEST(CalibrationTokensFromText, EachRunStartsAsTheTokenizerStartsASequence) {
  const std::string json = SentencePiece(kLlama2Normalizer, "null");
  std::vector<int32_t> ids;
  TokenRuns runs;
  // ▁hello ▁wor l d ▁hello ▁wor l d: two runs of <s> and three tokens.
  ASSERT_TRUE(CalibrationTokensFromText("hello world hello world", json, 280, 0, 2, 4, &ids,
                                        &runs)
                  .ok());
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 271, 274, 262, 1, 266, 271, 274}));
  EXPECT_EQ(runs.sequences, 2);
  EXPECT_EQ(runs.length, 4);
  EXPECT_EQ(CalibrationTokensFromText("hello world", json, 280, 0, 1, 1, &ids, &runs).message(),
            "calibration_length 1 leaves no room for text after the 1 token the tokenizer "
            "starts each sequence with");
  EXPECT_EQ(CalibrationTokensFromText("hello world", json, 280, 0, 2, 4, &ids, &runs).message(),
            "the text is 4 tokens, fewer than 2 sequences of 3 after the 1 token the tokenizer "
            "starts each sequence with");
}

}  // namespace
}  // namespace solverd::quant
