#include "common/huge_page_array.h"

#include <cstdlib>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace solverd {
namespace {

constexpr size_t kHugePageBytes = size_t{2} << 20;
// Smaller arrays come from malloc as they are: rounded up to a huge page
// they would waste more than they hold.
constexpr size_t kMinHugeBytes = kHugePageBytes / 2;

}  // namespace

void* AllocateHugePageBytes(size_t bytes) {
  if (bytes == 0) return nullptr;
  if (bytes < kMinHugeBytes) return std::malloc(bytes);
  const size_t rounded = (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  void* p = std::aligned_alloc(kHugePageBytes, rounded);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  // A hint: where THP is off the pages are 4 KiB as before.
  if (p != nullptr) madvise(p, rounded, MADV_HUGEPAGE);
#endif
  return p;
}

void FreeHugePageBytes(void* p) { std::free(p); }

}  // namespace solverd
