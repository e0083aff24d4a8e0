// Tests of HugePageArray: large arrays start on a 2 MiB boundary (so the
// OS can back them with huge pages), small ones come from malloc, every
// entry is usable, moves hand the memory over, and freed blocks serve later
// arrays of about their size.
#include "common/huge_page_array.h"

#include <cstdint>
#include <utility>

#include <gtest/gtest.h>

namespace solverd {
namespace {

TEST(HugePageArray, LargeArraysAre2MiBAlignedAndWholeUsable) {
  const int64_t size = (int64_t{3} << 20) / 8 + 5;  // past one huge page
  HugePageArray<double> a(size);
  ASSERT_NE(a.data(), nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data()) % (uintptr_t{2} << 20), 0u);
  EXPECT_EQ(a.size(), size);
  for (int64_t i = 0; i < size; ++i) a[i] = static_cast<double>(i);
  EXPECT_EQ(a[size - 1], static_cast<double>(size - 1));
  EXPECT_EQ(a[0], 0.0);
}

TEST(HugePageArray, SmallAndEmptyArrays) {
  HugePageArray<float> small(100);
  ASSERT_NE(small.data(), nullptr);
  for (int64_t i = 0; i < 100; ++i) small[i] = 1.5f * i;
  EXPECT_EQ(small[99], 148.5f);
  HugePageArray<float> none(0);
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.data(), nullptr);
  EXPECT_TRUE(HugePageArray<double>().empty());
}

TEST(HugePageArray, MovesHandTheMemoryOver) {
  HugePageArray<double> a(int64_t{1} << 18);
  a[7] = 3.0;
  const double* memory = a.data();
  HugePageArray<double> b = std::move(a);
  EXPECT_EQ(b.data(), memory);
  EXPECT_EQ(b[7], 3.0);
  EXPECT_TRUE(a.empty());
  a = std::move(b);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(a.data(), memory);
}

TEST(HugePageArray, AFreedArrayServesTheNextOfAboutItsSize) {
  const int64_t size = (int64_t{5} << 20) / 8;  // 5 MiB: three huge pages
  const double* memory = nullptr;
  {
    HugePageArray<double> a(size);
    memory = a.data();
    a[size - 1] = 1.0;
  }
  HugePageArray<double> same(size - 1000);  // rounds to the same three pages
  EXPECT_EQ(same.data(), memory);
  HugePageArray<double> other(size);  // the kept block is taken: a fresh one
  EXPECT_NE(other.data(), memory);
  for (int64_t i = 0; i < size; ++i) other[i] = 2.0;  // whole and writable
  EXPECT_EQ(other[size - 1], 2.0);
}

TEST(HugePageArray, AKeptBlockTooLargeForTheRequestIsLeft) {
  const double* memory = nullptr;
  {
    HugePageArray<double> large((int64_t{16} << 20) / 8);
    memory = large.data();
  }
  HugePageArray<double> small((int64_t{2} << 20) / 8);  // 2 MiB: not half of 16
  EXPECT_NE(small.data(), memory);
  HugePageArray<double> again((int64_t{16} << 20) / 8);
  EXPECT_EQ(again.data(), memory);
}

}  // namespace
}  // namespace solverd
