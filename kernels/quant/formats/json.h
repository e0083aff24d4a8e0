// A strict, small JSON reader and string escaper for safetensors headers
// and Hugging Face checkpoint files (config.json, the shard index,
// tokenizer.json): objects, arrays, strings (all escapes, \u surrogate
// pairs to UTF-8), numbers, true/false/null. A number without fraction or
// exponent that fits int64 is an integer; any other is a double. Nesting
// is bounded, so a hostile header cannot exhaust the stack. Object members keep their order; duplicates
// are reported by the caller that knows the schema. Pure functions.
#ifndef SOLVERD_KERNELS_QUANT_FORMATS_JSON_H_
#define SOLVERD_KERNELS_QUANT_FORMATS_JSON_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace solverd::quant {

struct JsonMember;

struct JsonValue {
  enum class Kind { kNull, kBool, kInteger, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  int64_t integer = 0;
  double number = 0;  // kNumber, and kInteger's value as a double
  std::string string;
  std::vector<JsonValue> array;
  std::vector<JsonMember> object;  // in document order
};

struct JsonMember {
  std::string name;
  JsonValue value;
};

// Parses all of `text` (surrounding whitespace allowed) into `out`.
// INVALID_ARGUMENT says what is wrong and at which byte offset.
Status ParseJson(std::string_view text, JsonValue* out);

// The member of object `value` named `name`, or nullptr (also when `value`
// is not an object).
const JsonValue* JsonFind(const JsonValue& value, std::string_view name);

// The boolean member `name` of `value`, or `fallback` when it has none.
bool JsonBoolOr(const JsonValue& value, std::string_view name, bool fallback);

// The string member `name` of `value`, or "" when it has none.
std::string JsonStringOr(const JsonValue& value, std::string_view name);

// `s` as a quoted JSON string.
std::string JsonQuote(std::string_view s);

}  // namespace solverd::quant

#endif  // SOLVERD_KERNELS_QUANT_FORMATS_JSON_H_
