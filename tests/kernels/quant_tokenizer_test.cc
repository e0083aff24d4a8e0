// Calibration from text: the word splits of GPT-2, Llama 3 and Qwen2 on
// text that exercises each alternative of their regexes, BPE merges by
// rank (and ignore_merges), and every tokenizer.json it refuses, saying why.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "quant/formats/bpe_tokenizer.h"

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
  EXPECT_EQ(missing.message(), "tokenizer.json: the vocabulary has no token \"z\", which the "
                               "merges leave of the word \" z\"");
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
            "tokenizer.json: a SentencePiece-style vocabulary (byte_fallback) is not applied by "
            "the server: send calibration_tokens instead");
  EXPECT_EQ(parse(Tokenizer("", "", R"({"type": "Metaspace"})")),
            "tokenizer.json: pre_tokenizer \"Metaspace\" is not one the server applies "
            "(ByteLevel, or Llama 3's or Qwen2's Split then ByteLevel): send calibration_tokens "
            "instead");
  EXPECT_EQ(parse(Tokenizer("", "", R"({"type": "ByteLevel"})", R"({"type": "Lowercase"})")),
            "tokenizer.json: normalizer \"Lowercase\" is not applied by the server: send "
            "calibration_tokens instead");
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

}  // namespace
}  // namespace solverd::quant
