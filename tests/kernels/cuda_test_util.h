// Shared by the kernel tests: skip a CUDA test, saying why, where no CUDA
// device can run it; solve an ot problem on CUDA device 0 on a stream of
// its own.
#ifndef SOLVERD_TESTS_KERNELS_CUDA_TEST_UTIL_H_
#define SOLVERD_TESTS_KERNELS_CUDA_TEST_UTIL_H_

#include <gtest/gtest.h>

#include "common/device.h"
#include "ot/ot.h"

#define SOLVERD_REQUIRE_CUDA()                                                     \
  if (::solverd::CudaDeviceCount() == 0) {                                         \
    GTEST_SKIP() << (::solverd::CudaCompiledIn() ? "no CUDA device on this machine" \
                                                 : "built without the CUDA backend"); \
  }

namespace solverd {

// A stream on CUDA device 0 for one test, destroyed with it.
class TestStream {
 public:
  TestStream() { status_ = CreateStream(0, &stream_); }
  ~TestStream() { if (stream_ != nullptr) DestroyStream(stream_); }
  TestStream(const TestStream&) = delete;
  TestStream& operator=(const TestStream&) = delete;
  const Status& status() const { return status_; }
  StreamHandle get() const { return stream_; }

 private:
  StreamHandle stream_ = nullptr;
  Status status_;
};

}  // namespace solverd

namespace solverd::ot {

inline Status SolveOnCuda(const Problem& p, const Options& o, Result* result) {
  StreamHandle stream = nullptr;
  SOLVERD_RETURN_IF_ERROR(CreateStream(0, &stream));
  Status s = Solve(Device::Cuda(0), stream, p, o, nullptr, nullptr, result);
  DestroyStream(stream);
  return s;
}

}  // namespace solverd::ot

#endif  // SOLVERD_TESTS_KERNELS_CUDA_TEST_UTIL_H_
