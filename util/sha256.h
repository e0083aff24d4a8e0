// SHA-256 of byte strings (OpenSSL's, which uses the CPU's SHA instructions
// where there are any): the digest every blob carries, so an upload can be
// checked against what the client hashed and every read against what was
// stored. Sha256Hasher is not thread-safe (one per stream); Sha256() is a
// pure function, safe from any thread.
#ifndef SOLVERD_UTIL_SHA256_H_
#define SOLVERD_UTIL_SHA256_H_

#include <memory>
#include <string>
#include <string_view>

namespace solverd {

inline constexpr size_t kSha256Bytes = 32;

// Hashes bytes fed in any number of pieces.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void Update(std::string_view bytes);
  // The 32-byte digest of everything fed so far. REQUIRES: called once.
  std::string Finish();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The 32-byte digest of `bytes`.
std::string Sha256(std::string_view bytes);

}  // namespace solverd

#endif  // SOLVERD_UTIL_SHA256_H_
