#include "quant/formats/bpe_tokenizer.h"

#include <algorithm>
#include <limits>

#include "quant/formats/gguf_vocab.h"
#include "quant/formats/json.h"

namespace solverd::quant {
namespace {

// The Split regexes of Llama 3's and Qwen2's tokenizer.json.
constexpr std::string_view kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

Status TokenizerError(const std::string& what) {
  return InvalidArgument("tokenizer.json: " + what);
}

bool IsSpace(uint32_t c) {
  return c == ' ' || (c >= 9 && c <= 13) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}
bool IsDigit(uint32_t c) { return c >= '0' && c <= '9'; }
bool IsLetter(uint32_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= 0x80 && !IsSpace(c));
}
bool IsOther(uint32_t c) { return !IsSpace(c) && !IsLetter(c) && !IsDigit(c); }
bool IsNewline(uint32_t c) { return c == '\r' || c == '\n'; }

// The code points of UTF-8 `text` and the byte offset of each (and of the end).
Status Decode(std::string_view text, std::vector<uint32_t>* cps, std::vector<size_t>* at) {
  for (size_t i = 0; i < text.size();) {
    const auto b = static_cast<unsigned char>(text[i]);
    const int n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    uint32_t c = n == 1 ? b : n == 2 ? b & 0x1F : n == 3 ? b & 0x0F : b & 0x07;
    bool valid = n > 0 && i + n <= text.size();
    for (int k = 1; valid && k < n; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      valid = (next >> 6) == 2;
      c = (c << 6) | (next & 0x3F);
    }
    if (!valid) return InvalidArgument("invalid UTF-8 at byte " + std::to_string(i));
    at->push_back(i);
    cps->push_back(c);
    i += static_cast<size_t>(n);
  }
  at->push_back(text.size());
  return Status::Ok();
}

class Splitter {
 public:
  explicit Splitter(const std::vector<uint32_t>& cps) : c_(cps) {}

  // The length in code points of the word at `i` (at least 1).
  size_t Gpt2At(size_t i) const {
    if (const size_t n = Contraction(i, false)) return n;
    const size_t j = i + (c_[i] == ' ' && i + 1 < c_.size() ? 1 : 0);
    if (IsLetter(c_[j])) return Run(j, IsLetter) - i;
    if (IsDigit(c_[j])) return Run(j, IsDigit) - i;
    if (IsOther(c_[j])) return Run(j, IsOther) - i;
    return WhitespaceAt(i);
  }

  // Llama 3's (max_digits 3) and Qwen2's (1).
  size_t Llama3At(size_t i, size_t max_digits) const {
    if (const size_t n = Contraction(i, true)) return n;
    if (IsLetter(c_[i])) return Run(i, IsLetter) - i;
    if (!IsNewline(c_[i]) && !IsDigit(c_[i]) && i + 1 < c_.size() && IsLetter(c_[i + 1])) {
      return Run(i + 1, IsLetter) - i;
    }
    if (IsDigit(c_[i])) return std::min(Run(i, IsDigit) - i, max_digits);
    const size_t j = i + (c_[i] == ' ' && i + 1 < c_.size() ? 1 : 0);
    if (IsOther(c_[j])) return Run(Run(j, IsOther), IsNewline) - i;
    const size_t end = Run(i, IsSpace);  // \s*[\r\n]+: through the run's last newline
    for (size_t k = end; k > i; --k) {
      if (IsNewline(c_[k - 1])) return k - i;
    }
    return WhitespaceAt(i);
  }

 private:
  size_t Run(size_t i, bool (*in)(uint32_t)) const {
    while (i < c_.size() && in(c_[i])) ++i;
    return i;
  }
  // 's 't 're 've 'm 'll 'd, in any case with `any_case`.
  size_t Contraction(size_t i, bool any_case) const {
    if (c_[i] != '\'') return 0;
    for (const std::string_view suffix : {"s", "t", "re", "ve", "m", "ll", "d"}) {
      if (i + 1 + suffix.size() > c_.size()) continue;
      bool same = true;
      for (size_t k = 0; same && k < suffix.size(); ++k) {
        uint32_t c = c_[i + 1 + k];
        if (any_case && c >= 'A' && c <= 'Z') c += 'a' - 'A';
        same = c == static_cast<uint32_t>(suffix[k]);
      }
      if (same) return 1 + suffix.size();
    }
    return 0;
  }
  // \s+(?!\S)|\s+ : a run of white space before a word leaves it its
  // last character (unless that is all the run is).
  size_t WhitespaceAt(size_t i) const {
    const size_t end = Run(i, IsSpace);
    if (end == c_.size() || end - i <= 1) return std::max<size_t>(end - i, 1);
    return end - i - 1;
  }

  const std::vector<uint32_t>& c_;
};

// GPT-2's characters for the 256 bytes: printable Latin-1 stands for
// itself, every other byte for U+0100 on, in byte order; as UTF-8.
const std::vector<std::string>& ByteCharacters() {
  static const std::vector<std::string>* const kTable = [] {
    auto* table = new std::vector<std::string>(256);
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const uint32_t c = printable ? b : next++;
      std::string& s = (*table)[b];
      if (c < 0x80) {
        s.push_back(static_cast<char>(c));
      } else {
        s.push_back(static_cast<char>(0xC0 | (c >> 6)));
        s.push_back(static_cast<char>(0x80 | (c & 0x3F)));
      }
    }
    return table;
  }();
  return *kTable;
}

bool Flag(const JsonValue& object, std::string_view name, bool fallback) {
  const JsonValue* v = JsonFind(object, name);
  return v != nullptr && v->kind == JsonValue::Kind::kBool ? v->boolean : fallback;
}

std::string TypeOf(const JsonValue& object) {
  const JsonValue* type = JsonFind(object, "type");
  return type != nullptr && type->kind == JsonValue::Kind::kString ? type->string : "";
}

// The word split and prefix space `pre` (the pre_tokenizer object) asks for.
Status ReadPreTokenizer(const JsonValue& pre, WordSplit* split, bool* prefix_space) {
  const std::string type = TypeOf(pre);
  if (type == "ByteLevel") {
    *split = Flag(pre, "use_regex", true) ? WordSplit::kGpt2 : WordSplit::kNone;
    *prefix_space = Flag(pre, "add_prefix_space", false);
    return Status::Ok();
  }
  const JsonValue* steps = JsonFind(pre, "pretokenizers");
  if (type == "Sequence" && steps != nullptr && steps->array.size() == 2 &&
      TypeOf(steps->array[0]) == "Split" && TypeOf(steps->array[1]) == "ByteLevel" &&
      !Flag(steps->array[1], "use_regex", true)) {
    const JsonValue* pattern = JsonFind(steps->array[0], "pattern");
    const JsonValue* regex = pattern == nullptr ? nullptr : JsonFind(*pattern, "Regex");
    const std::string_view r = regex != nullptr ? std::string_view(regex->string) : "";
    if (r == kLlama3Regex || r == kQwen2Regex) {
      *split = r == kLlama3Regex ? WordSplit::kLlama3 : WordSplit::kQwen2;
      *prefix_space = Flag(steps->array[1], "add_prefix_space", false);
      return Status::Ok();
    }
  }
  return TokenizerError("pre_tokenizer " + JsonQuote(type) + " is not one the server applies "
                        "(ByteLevel, or Llama 3's or Qwen2's Split then ByteLevel): send "
                        "calibration_tokens instead");
}

}  // namespace

Status SplitWords(std::string_view text, WordSplit split,
                  std::vector<std::pair<size_t, size_t>>* words) {
  std::vector<uint32_t> cps;
  std::vector<size_t> at;
  SOLVERD_RETURN_IF_ERROR(Decode(text, &cps, &at));
  if (split == WordSplit::kNone) {
    if (!text.empty()) words->emplace_back(0, text.size());
    return Status::Ok();
  }
  const Splitter splitter(cps);
  for (size_t i = 0; i < cps.size();) {
    const size_t n = split == WordSplit::kGpt2     ? splitter.Gpt2At(i)
                     : split == WordSplit::kLlama3 ? splitter.Llama3At(i, 3)
                                                   : splitter.Llama3At(i, 1);
    words->emplace_back(at[i], at[i + n]);
    i += n;
  }
  return Status::Ok();
}

Status BpeTokenizer::Parse(std::string_view tokenizer_json, int64_t vocab_size,
                           BpeTokenizer* out) {
  internal::GgufVocab vocab;
  SOLVERD_RETURN_IF_ERROR(internal::VocabFromTokenizerJson(tokenizer_json, vocab_size, &vocab));
  if (vocab.model != "gpt2") {
    return TokenizerError("a SentencePiece-style vocabulary (byte_fallback) is not applied by "
                          "the server: send calibration_tokens instead");
  }
  JsonValue root;
  SOLVERD_RETURN_IF_ERROR(ParseJson(tokenizer_json, &root));
  const JsonValue* normalizer = JsonFind(root, "normalizer");
  if (normalizer != nullptr && normalizer->kind != JsonValue::Kind::kNull &&
      TypeOf(*normalizer) != "NFC") {
    return TokenizerError("normalizer " + JsonQuote(TypeOf(*normalizer)) + " is not applied "
                          "by the server: send calibration_tokens instead");
  }
  const JsonValue* pre = JsonFind(root, "pre_tokenizer");
  if (pre == nullptr || pre->kind == JsonValue::Kind::kNull) {
    return TokenizerError("a byte-level vocabulary needs a ByteLevel pre_tokenizer");
  }
  SOLVERD_RETURN_IF_ERROR(ReadPreTokenizer(*pre, &out->split_, &out->add_prefix_space_));
  out->ignore_merges_ = Flag(*JsonFind(root, "model"), "ignore_merges", false);
  for (size_t id = 0; id < vocab.tokens.size(); ++id) {
    out->vocab_.emplace(vocab.tokens[id], static_cast<int32_t>(id));
  }
  for (size_t rank = 0; rank < vocab.merges.size(); ++rank) {
    out->ranks_.emplace(vocab.merges[rank], static_cast<int64_t>(rank));
  }
  return Status::Ok();
}

Status BpeTokenizer::EncodeWord(std::string_view word, std::vector<int32_t>* ids) const {
  std::vector<std::string> symbols;
  for (const char b : word) symbols.push_back(ByteCharacters()[static_cast<unsigned char>(b)]);
  std::string whole;
  for (const std::string& s : symbols) whole += s;
  if (ignore_merges_ && vocab_.count(whole) > 0) symbols = {whole};
  while (symbols.size() > 1) {
    int64_t best = std::numeric_limits<int64_t>::max();
    std::string pair;
    for (size_t k = 0; k + 1 < symbols.size(); ++k) {
      const auto rank = ranks_.find(symbols[k] + " " + symbols[k + 1]);
      if (rank != ranks_.end() && rank->second < best) {
        best = rank->second;
        pair = rank->first;
      }
    }
    if (pair.empty()) break;
    std::vector<std::string> merged;
    for (size_t k = 0; k < symbols.size(); ++k) {
      if (k + 1 < symbols.size() && symbols[k] + " " + symbols[k + 1] == pair) {
        merged.push_back(symbols[k] + symbols[k + 1]);
        ++k;
      } else {
        merged.push_back(symbols[k]);
      }
    }
    symbols = std::move(merged);
  }
  for (const std::string& s : symbols) {
    const auto id = vocab_.find(s);
    if (id == vocab_.end()) {
      return TokenizerError("the vocabulary has no token " + JsonQuote(s) + ", which the merges "
                            "leave of the word " + JsonQuote(word));
    }
    ids->push_back(id->second);
  }
  return Status::Ok();
}

Status BpeTokenizer::Encode(std::string_view text, std::vector<int32_t>* ids) const {
  std::string prefixed;
  if (add_prefix_space_ && !text.empty() && text[0] != ' ') {
    prefixed = " " + std::string(text);
    text = prefixed;
  }
  std::vector<std::pair<size_t, size_t>> words;
  SOLVERD_RETURN_IF_ERROR(SplitWords(text, split_, &words));
  std::unordered_map<std::string_view, std::vector<int32_t>> seen;  // words repeat
  for (const auto& [begin, end] : words) {
    const std::string_view word = text.substr(begin, end - begin);
    auto found = seen.find(word);
    if (found == seen.end()) {
      std::vector<int32_t> word_ids;
      SOLVERD_RETURN_IF_ERROR(EncodeWord(word, &word_ids));
      found = seen.emplace(word, std::move(word_ids)).first;
    }
    ids->insert(ids->end(), found->second.begin(), found->second.end());
  }
  return Status::Ok();
}

}  // namespace solverd::quant
