// Fuzzes blob reassembly: the bytes are a sequence of UploadBlob chunks
// (offset, data), against a small quota. Each upload either stores exactly
// the bytes sent or fails, and the quota is always given back in full.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/time/time.h"
#include "server/blob_store.h"
#include "server/blob_upload.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace solverd::server;
  BlobStore store(BlobStore::Options{/*quota_bytes=*/4096, absl::Hours(1)});
  std::string expected;
  bool ok = true;
  {
    BlobUpload upload(store, "fuzzer");
    // Each chunk: 2 bytes of offset delta (signed), 1 byte of length, data.
    size_t at = 0;
    while (ok && at + 3 <= size) {
      int16_t delta;
      std::memcpy(&delta, data + at, 2);
      const size_t length = std::min<size_t>(data[at + 2], size - at - 3);
      const absl::string_view chunk(reinterpret_cast<const char*>(data + at + 3), length);
      ok = upload.Append(upload.size() + delta, chunk).ok();
      if (ok) expected.append(chunk.data(), chunk.size());
      at += 3 + length;
    }
    if (ok) {
      auto blob = upload.Finish(absl::Now());
      if (!blob.ok() || *store.Get(blob->id)->bytes != expected) std::abort();
      if (store.used_bytes() != static_cast<int64_t>(expected.size())) std::abort();
      return 0;
    }
  }
  if (store.used_bytes() != 0) std::abort();  // a failed upload holds no quota
  return 0;
}
