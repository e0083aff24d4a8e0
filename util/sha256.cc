#include "util/sha256.h"

#include <openssl/evp.h>

namespace solverd {

struct Sha256Hasher::State {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~State() { EVP_MD_CTX_free(ctx); }
};

Sha256Hasher::Sha256Hasher() : state_(std::make_unique<State>()) {
  EVP_DigestInit_ex(state_->ctx, EVP_sha256(), nullptr);
}

Sha256Hasher::~Sha256Hasher() = default;

void Sha256Hasher::Update(std::string_view bytes) {
  EVP_DigestUpdate(state_->ctx, bytes.data(), bytes.size());
}

std::string Sha256Hasher::Finish() {
  std::string digest(kSha256Bytes, '\0');
  unsigned int size = 0;
  EVP_DigestFinal_ex(state_->ctx, reinterpret_cast<unsigned char*>(digest.data()), &size);
  return digest;
}

std::string Sha256(std::string_view bytes) {
  Sha256Hasher hasher;
  hasher.Update(bytes);
  return hasher.Finish();
}

}  // namespace solverd
