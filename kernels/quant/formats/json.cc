#include "quant/formats/json.h"

#include <charconv>
#include <system_error>

namespace solverd::quant {
namespace {

constexpr int kMaxDepth = 16;

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Status Document(JsonValue* out) {
    SOLVERD_RETURN_IF_ERROR(Value(out, 0));
    SkipSpace();
    if (pos_ != text_.size()) return Error("unexpected text after the value");
    return Status::Ok();
  }

 private:
  Status Error(const std::string& what) const {
    return InvalidArgument("JSON at byte " + std::to_string(pos_) + ": " + what);
  }
  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool Consume(char c) {
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool ConsumeWord(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  Status Value(JsonValue* out, int depth) {
    if (depth > kMaxDepth) return Error("nested too deeply");
    SkipSpace();
    if (pos_ >= text_.size()) return Error("unexpected end");
    const char c = text_[pos_];
    if (c == '{') return Object(out, depth);
    if (c == '[') return Array(out, depth);
    if (c == '"') {
      out->kind = JsonValue::Kind::kString;
      return String(&out->string);
    }
    if (c == '-' || (c >= '0' && c <= '9')) return Number(out);
    if (ConsumeWord("true") || ConsumeWord("false")) {
      out->kind = JsonValue::Kind::kBool;
      out->boolean = c == 't';
      return Status::Ok();
    }
    if (ConsumeWord("null")) {
      out->kind = JsonValue::Kind::kNull;
      return Status::Ok();
    }
    return Error("unexpected character");
  }

  Status Object(JsonValue* out, int depth) {
    out->kind = JsonValue::Kind::kObject;
    ++pos_;
    if (Consume('}')) return Status::Ok();
    do {
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != '"') return Error("expected a member name");
      JsonMember member;
      SOLVERD_RETURN_IF_ERROR(String(&member.name));
      if (!Consume(':')) return Error("expected ':'");
      SOLVERD_RETURN_IF_ERROR(Value(&member.value, depth + 1));
      out->object.push_back(std::move(member));
    } while (Consume(','));
    if (!Consume('}')) return Error("expected ',' or '}'");
    return Status::Ok();
  }

  Status Array(JsonValue* out, int depth) {
    out->kind = JsonValue::Kind::kArray;
    ++pos_;
    if (Consume(']')) return Status::Ok();
    do {
      out->array.emplace_back();
      SOLVERD_RETURN_IF_ERROR(Value(&out->array.back(), depth + 1));
    } while (Consume(','));
    if (!Consume(']')) return Error("expected ',' or ']'");
    return Status::Ok();
  }

  bool Digit() const { return pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9'; }

  // -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, as RFC 8259 has it.
  Status Number(JsonValue* out) {
    const size_t start = pos_;
    if (text_[pos_] == '-') ++pos_;
    if (!Digit()) return Error("expected a digit");
    const bool leading_zero = text_[pos_] == '0';
    while (Digit()) ++pos_;
    if (leading_zero && pos_ - start > (text_[start] == '-' ? 2u : 1u)) {
      return Error("a number cannot start with 0");
    }
    bool integral = true;
    if (pos_ < text_.size() && text_[pos_] == '.') {
      ++pos_;
      if (!Digit()) return Error("expected a digit after '.'");
      while (Digit()) ++pos_;
      integral = false;
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (!Digit()) return Error("expected a digit in the exponent");
      while (Digit()) ++pos_;
      integral = false;
    }
    const std::string_view digits = text_.substr(start, pos_ - start);
    const char* end = digits.data() + digits.size();
    if (integral && std::from_chars(digits.data(), end, out->integer).ec == std::errc()) {
      out->kind = JsonValue::Kind::kInteger;
      out->number = static_cast<double>(out->integer);
      return Status::Ok();
    }
    if (std::from_chars(digits.data(), end, out->number).ec != std::errc()) {
      return Error("number out of range");
    }
    out->kind = JsonValue::Kind::kNumber;
    return Status::Ok();
  }

  Status Hex4(uint32_t* out) {
    if (pos_ + 4 > text_.size()) return Error("truncated \\u escape");
    *out = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_++];
      const int digit = c >= '0' && c <= '9'   ? c - '0'
                        : c >= 'a' && c <= 'f' ? c - 'a' + 10
                        : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                               : -1;
      if (digit < 0) return Error("bad \\u escape");
      *out = *out * 16 + static_cast<uint32_t>(digit);
    }
    return Status::Ok();
  }

  Status CodePoint(std::string* out) {
    uint32_t cp;
    SOLVERD_RETURN_IF_ERROR(Hex4(&cp));
    if (cp >= 0xdc00 && cp < 0xe000) return Error("unpaired low surrogate");
    if (cp >= 0xd800 && cp < 0xdc00) {
      uint32_t low;
      if (!ConsumeWord("\\u")) return Error("unpaired high surrogate");
      SOLVERD_RETURN_IF_ERROR(Hex4(&low));
      if (low < 0xdc00 || low >= 0xe000) return Error("unpaired high surrogate");
      cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
    }
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
    return Status::Ok();
  }

  Status String(std::string* out) {
    ++pos_;  // the opening quote
    while (pos_ < text_.size()) {
      const char c = text_[pos_++];
      if (c == '"') return Status::Ok();
      if (static_cast<unsigned char>(c) < 0x20) return Error("control character in a string");
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= text_.size()) break;
      const char e = text_[pos_++];
      switch (e) {
        case '"': case '\\': case '/': out->push_back(e); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': SOLVERD_RETURN_IF_ERROR(CodePoint(out)); break;
        default: return Error("bad escape");
      }
    }
    return Error("unterminated string");
  }

  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

Status ParseJson(std::string_view text, JsonValue* out) {
  *out = JsonValue();
  return Parser(text).Document(out);
}

const JsonValue* JsonFind(const JsonValue& value, std::string_view name) {
  if (value.kind != JsonValue::Kind::kObject) return nullptr;
  for (const JsonMember& m : value.object) {
    if (m.name == name) return &m.value;
  }
  return nullptr;
}

bool JsonBoolOr(const JsonValue& value, std::string_view name, bool fallback) {
  const JsonValue* v = JsonFind(value, name);
  return v != nullptr && v->kind == JsonValue::Kind::kBool ? v->boolean : fallback;
}

std::string JsonStringOr(const JsonValue& value, std::string_view name) {
  const JsonValue* v = JsonFind(value, name);
  return v != nullptr && v->kind == JsonValue::Kind::kString ? v->string : "";
}

std::string JsonQuote(std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      out += "\\u00";
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xf]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

}  // namespace solverd::quant
