// HugePageArray<T>: a fixed-size, uninitialized array of a trivial T whose
// memory is 2 MiB-aligned and, where the OS takes the hint (Linux with
// transparent huge pages on request, Debian's default), backed by 2 MiB
// pages. A fresh buffer first touched 4 KiB at a time takes a page fault
// per page: 512 per 2 MiB, about 3 ms on the 2-core dev VM, which was more
// than a whole n = 500 Sinkhorn solve's iterations. With huge pages it is
// one fault per 2 MiB. Freed arrays of 64 KiB and more are kept, up to
// 512 MiB in all, for later arrays of about their size, which then take no
// fault at all (huge_page_array.cc). Not zeroed: the owner writes every entry
// first. Move-only; not thread-safe (as std::vector); arrays on different
// threads may come and go at once.
#ifndef SOLVERD_KERNELS_COMMON_HUGE_PAGE_ARRAY_H_
#define SOLVERD_KERNELS_COMMON_HUGE_PAGE_ARRAY_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace solverd {

// `bytes` rounded up to whole 2 MiB pages, 2 MiB-aligned, advised for huge
// pages (under 1 MiB: to 64 KiB, under 64 KiB: plain malloc); nullptr when
// out of memory or for 0 bytes. Free with FreeHugePageBytes, which may keep
// the block for a later call. Thread-safe.
void* AllocateHugePageBytes(size_t bytes);
void FreeHugePageBytes(void* p);

template <typename T>
class HugePageArray {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>);

 public:
  HugePageArray() = default;
  // Throws std::bad_alloc when out of memory, as a vector would.
  explicit HugePageArray(int64_t size)
      : data_(static_cast<T*>(AllocateHugePageBytes(static_cast<size_t>(size) * sizeof(T)))),
        size_(size) {
    if (size > 0 && data_ == nullptr) throw std::bad_alloc();
  }

  HugePageArray(HugePageArray&& other) noexcept
      : data_(std::move(other.data_)), size_(std::exchange(other.size_, 0)) {}
  HugePageArray& operator=(HugePageArray&& other) noexcept {
    data_ = std::move(other.data_);
    size_ = std::exchange(other.size_, 0);
    return *this;
  }

  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  int64_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T& operator[](int64_t i) { return data_.get()[i]; }
  const T& operator[](int64_t i) const { return data_.get()[i]; }

 private:
  struct Free {
    void operator()(T* p) const { FreeHugePageBytes(p); }
  };
  std::unique_ptr<T, Free> data_;
  int64_t size_ = 0;
};

}  // namespace solverd

#endif  // SOLVERD_KERNELS_COMMON_HUGE_PAGE_ARRAY_H_
