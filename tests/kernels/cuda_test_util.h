// Shared by the kernel tests: skip a CUDA test, saying why, where no CUDA
// device can run it.
#ifndef SOLVERD_TESTS_KERNELS_CUDA_TEST_UTIL_H_
#define SOLVERD_TESTS_KERNELS_CUDA_TEST_UTIL_H_

#include <gtest/gtest.h>

#include "common/device.h"

#define SOLVERD_REQUIRE_CUDA()                                                     \
  if (::solverd::CudaDeviceCount() == 0) {                                         \
    GTEST_SKIP() << (::solverd::CudaCompiledIn() ? "no CUDA device on this machine" \
                                                 : "built without the CUDA backend"); \
  }

#endif  // SOLVERD_TESTS_KERNELS_CUDA_TEST_UTIL_H_
