// factorization_bench: GPTQ's host factorization (the upper Cholesky factor
// of H^-1: one Cholesky and one triangular inverse) at the given widths, by
// the host LAPACK and by the hand-rolled loops, on the same damped
// Kac-Murdock-Szego matrix H[i][j] = 0.5^|i - j| (positive definite, and
// built in O(n^2) where X^T X would take longer than the factorization).
//   factorization_bench [--threads=T] [--loops-up-to=N] N1 N2 ...
// prints one JSON object per line: {"n", "system", "seconds"}; the loops
// run only up to --loops-up-to (default 12000: beyond it they take hours).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "quant/gptq_hessian.h"

namespace {

using solverd::quant::internal::Factorization;

std::vector<double> KmsMatrix(int64_t n) {
  std::vector<double> power(static_cast<size_t>(n));  // 0.5^k, down to 0
  for (int64_t k = 0; k < n; ++k) {
    power[k] = std::ldexp(1.0, -static_cast<int>(std::min<int64_t>(k, 2000)));
  }
  std::vector<double> h(static_cast<size_t>(n * n));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) h[i * n + j] = power[std::abs(i - j)];
  }
  return h;
}

// Seconds one factorization takes, or a negative number when it failed.
double Time(int64_t n, int threads, Factorization how) {
  std::vector<double> h = KmsMatrix(n);
  const auto start = std::chrono::steady_clock::now();
  const solverd::Status s = solverd::quant::internal::InverseCholeskyUpper(n, threads, &h, how);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!s.ok()) {
    std::fprintf(stderr, "n=%lld: %s\n", static_cast<long long>(n), s.message().c_str());
    return -1;
  }
  return seconds;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  int64_t loops_up_to = 12000;
  std::vector<int64_t> widths;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      threads = std::atoi(argv[i] + 10);
    } else if (std::strncmp(argv[i], "--loops-up-to=", 14) == 0) {
      loops_up_to = std::atoll(argv[i] + 14);
    } else {
      widths.push_back(std::atoll(argv[i]));
    }
  }
  int failures = 0;
  for (const int64_t n : widths) {
    struct Run {
      const char* system;
      Factorization how;
      bool wanted;
    };
    const Run runs[] = {
        {"solverd-lapack", Factorization::kLibrary, solverd::quant::internal::HaveLapack()},
        {"solverd-hand-rolled", Factorization::kHandRolled, n <= loops_up_to}};
    for (const Run& run : runs) {
      if (!run.wanted) continue;
      const double seconds = Time(n, threads, run.how);
      failures += seconds < 0;
      std::printf("{\"n\": %lld, \"system\": \"%s\", \"seconds\": %.3f}\n",
                  static_cast<long long>(n), run.system, seconds);
      std::fflush(stdout);
    }
  }
  return failures == 0 ? 0 : 1;
}
