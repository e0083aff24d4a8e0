#include "common/huge_page_array.h"

#include <cstdlib>
#include <deque>
#include <mutex>
#include <unordered_map>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace solverd {
namespace {

constexpr size_t kHugePageBytes = size_t{2} << 20;
// Smaller arrays are not rounded up to a huge page (they would waste more
// than they hold) but to this, and go through the same cache of freed
// blocks: glibc maps arrays this large afresh on every malloc (its mmap
// threshold starts at 128 KiB and grows only when a mapped block is
// freed), so at 500 x 500 SNS's 300 KiB sparse plan took a fault per 4 KiB
// page in every build once the kernel's block stayed in the cache.
constexpr size_t kMinHugeBytes = kHugePageBytes / 2;
constexpr size_t kSmallBlockBytes = size_t{64} << 10;
// Freed blocks kept for reuse, at most this much in all (the oldest go
// first). The OS hands out every fresh block as pages it zeroes on first
// touch, and when it has no free 2 MiB pages at hand, 4 KiB at a time:
// SNS at n = 2000 on the dev VM spent 35 ms of 0.16 s so (clear_page in
// perf, its double kernel and sparse plan of 32 + 15 MiB), and a server
// solving a stream of like-sized problems paid that for every one. (The
// server also has malloc keep freed blocks under 32 MiB in its heap,
// server/main.cc; this cache holds larger ones too, and serves the kernels
// wherever they run.)
constexpr size_t kMaxKeptBytes = size_t{512} << 20;

// The blocks of huge pages: sizes of those in use, and the freed ones kept.
class BlockCache {
 public:
  void* Take(size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    // The smallest kept block that fits without wasting half of itself.
    auto best = kept_.end();
    for (auto it = kept_.begin(); it != kept_.end(); ++it) {
      if (it->bytes >= bytes && it->bytes / 2 < bytes &&
          (best == kept_.end() || it->bytes < best->bytes)) {
        best = it;
      }
    }
    if (best == kept_.end()) return nullptr;
    const Block block = *best;
    kept_.erase(best);
    kept_bytes_ -= block.bytes;
    in_use_[block.memory] = block.bytes;
    return block.memory;
  }

  // Frees every kept block (before giving up for want of memory).
  void FreeKept() {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Block& block : kept_) std::free(block.memory);
    kept_.clear();
    kept_bytes_ = 0;
  }

  void InUse(void* memory, size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    in_use_[memory] = bytes;
  }

  // Keeps a freed block, or frees it; false for memory not from here.
  bool Give(void* memory) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = in_use_.find(memory);
    if (it == in_use_.end()) return false;
    const size_t bytes = it->second;
    in_use_.erase(it);
    if (bytes > kMaxKeptBytes) {
      std::free(memory);
      return true;
    }
    while (kept_bytes_ + bytes > kMaxKeptBytes) {
      std::free(kept_.front().memory);
      kept_bytes_ -= kept_.front().bytes;
      kept_.pop_front();
    }
    kept_.push_back({memory, bytes});
    kept_bytes_ += bytes;
    return true;
  }

 private:
  struct Block {
    void* memory;
    size_t bytes;
  };
  std::mutex mu_;
  std::unordered_map<void*, size_t> in_use_;
  std::deque<Block> kept_;  // oldest first
  size_t kept_bytes_ = 0;
};

BlockCache& Blocks() {
  static BlockCache* cache = new BlockCache();  // never destroyed: used until exit
  return *cache;
}

}  // namespace

void* AllocateHugePageBytes(size_t bytes) {
  if (bytes == 0) return nullptr;
  if (bytes < kSmallBlockBytes) return std::malloc(bytes);
  const bool huge = bytes >= kMinHugeBytes;
  const size_t unit = huge ? kHugePageBytes : kSmallBlockBytes;
  const size_t rounded = (bytes + unit - 1) / unit * unit;
  if (void* kept = Blocks().Take(rounded)) return kept;
  void* p = std::aligned_alloc(unit, rounded);
  if (p == nullptr) {
    Blocks().FreeKept();
    p = std::aligned_alloc(unit, rounded);
    if (p == nullptr) return nullptr;
  }
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  // A hint: where THP is off the pages are 4 KiB as before.
  if (huge) madvise(p, rounded, MADV_HUGEPAGE);
#endif
  Blocks().InUse(p, rounded);
  return p;
}

void FreeHugePageBytes(void* p) {
  if (p != nullptr && !Blocks().Give(p)) std::free(p);
}

}  // namespace solverd
