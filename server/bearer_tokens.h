// BearerTokens: who a call comes from, by the bearer token in its
// `authorization` metadata, checked against --auth-tokens-file.
//
// The file holds one "NAME TOKEN" pair per line ('#' starts a comment);
// NAME is what a job records as its owner and what quotas count by.
// A presented token is compared with every configured one, each in time
// that does not depend on where they differ, so timing reveals neither
// whether nor which token matched.
// Immutable once loaded, so thread-safe.
#ifndef SOLVERD_SERVER_BEARER_TOKENS_H_
#define SOLVERD_SERVER_BEARER_TOKENS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace solverd::server {

class BearerTokens {
 public:
  // Tokens shorter than this are refused: they could be guessed.
  static constexpr size_t kMinTokenLength = 16;

  static absl::StatusOr<BearerTokens> Load(const std::string& path);
  static absl::StatusOr<BearerTokens> Parse(absl::string_view text);

  // The name for `authorization` ("Bearer <token>"); UNAUTHENTICATED when it
  // is missing, malformed or no configured token.
  absl::StatusOr<std::string> NameFor(absl::string_view authorization) const;

  size_t size() const { return tokens_.size(); }

 private:
  std::vector<std::pair<std::string, std::string>> tokens_;  // name, token
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_BEARER_TOKENS_H_
