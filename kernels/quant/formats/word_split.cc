#include "quant/formats/word_split.h"

#include <algorithm>
#include <string>

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

}  // namespace

Status DecodeUtf8(std::string_view text, std::vector<uint32_t>* cps, std::vector<size_t>* at) {
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

Status SplitWords(std::string_view text, WordSplit split,
                  std::vector<std::pair<size_t, size_t>>* words) {
  std::vector<uint32_t> cps;
  std::vector<size_t> at;
  SOLVERD_RETURN_IF_ERROR(DecodeUtf8(text, &cps, &at));
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

Status ReadWordSplit(const JsonValue& pre, WordSplit* split, bool* prefix_space) {
  const std::string type = JsonStringOr(pre, "type");
  if (type == "ByteLevel") {
    *split = JsonBoolOr(pre, "use_regex", true) ? WordSplit::kGpt2 : WordSplit::kNone;
    *prefix_space = JsonBoolOr(pre, "add_prefix_space", false);
    return Status::Ok();
  }
  const JsonValue* steps = JsonFind(pre, "pretokenizers");
  if (type == "Sequence" && steps != nullptr && steps->array.size() == 2 &&
      JsonStringOr(steps->array[0], "type") == "Split" &&
      JsonStringOr(steps->array[1], "type") == "ByteLevel" &&
      !JsonBoolOr(steps->array[1], "use_regex", true)) {
    const JsonValue* pattern = JsonFind(steps->array[0], "pattern");
    const JsonValue* regex = pattern == nullptr ? nullptr : JsonFind(*pattern, "Regex");
    const std::string_view r = regex != nullptr ? std::string_view(regex->string) : "";
    if (r == kLlama3Regex || r == kQwen2Regex) {
      *split = r == kLlama3Regex ? WordSplit::kLlama3 : WordSplit::kQwen2;
      *prefix_space = JsonBoolOr(steps->array[1], "add_prefix_space", false);
      return Status::Ok();
    }
  }
  return InvalidArgument("tokenizer.json: pre_tokenizer " + JsonQuote(type) +
                         " is not one the server applies (ByteLevel, or Llama 3's or Qwen2's "
                         "Split then ByteLevel): send calibration_tokens instead");
}

}  // namespace solverd::quant
