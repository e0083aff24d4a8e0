#include "server/bearer_tokens.h"

#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace solverd::server {
namespace {

// Equality whose running time depends only on the lengths.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() != b.size() ? 1u : 0u;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? a[i] : 0, y = i < b.size() ? b[i] : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

bool ValidName(absl::string_view name) {
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-' && c != '@') return false;
  }
  return !name.empty();
}

}  // namespace

absl::StatusOr<BearerTokens> BearerTokens::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("auth_tokens_file: cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  auto tokens = Parse(text.str());
  if (!tokens.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("auth_tokens_file ", path, ": ",
                                                   tokens.status().message()));
  }
  return tokens;
}

absl::StatusOr<BearerTokens> BearerTokens::Parse(absl::string_view text) {
  BearerTokens out;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": expected NAME TOKEN"));
    }
    if (!ValidName(fields[0])) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": name may use only [A-Za-z0-9._@-]"));
    }
    if (fields[1].size() < kMinTokenLength) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_number, ": token shorter than ", kMinTokenLength, " characters"));
    }
    for (const auto& [name, token] : out.tokens_) {
      if (token == fields[1]) {
        return absl::InvalidArgumentError(
            absl::StrCat("line ", line_number, ": token repeated (also ", name, "'s)"));
      }
    }
    out.tokens_.emplace_back(std::string(fields[0]), std::string(fields[1]));
  }
  if (out.tokens_.empty()) return absl::InvalidArgumentError("no tokens");
  return out;
}

absl::StatusOr<std::string> BearerTokens::NameFor(absl::string_view authorization) const {
  constexpr absl::string_view kScheme = "Bearer ";
  if (authorization.empty()) {
    return absl::UnauthenticatedError("missing `authorization: Bearer <token>` metadata");
  }
  if (!absl::StartsWithIgnoreCase(authorization, kScheme)) {
    return absl::UnauthenticatedError("authorization: expected the Bearer scheme");
  }
  const absl::string_view presented = authorization.substr(kScheme.size());
  const std::string* match = nullptr;
  for (const auto& [name, token] : tokens_) {  // no early exit
    if (ConstantTimeEquals(presented, token)) match = &name;
  }
  if (match == nullptr) return absl::UnauthenticatedError("authorization: unknown token");
  return *match;
}

}  // namespace solverd::server
