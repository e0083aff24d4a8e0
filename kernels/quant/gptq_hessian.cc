#include "quant/gptq_hessian.h"

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "common/cpu_clones.h"
#include "common/parallel_for.h"
#include "quant/gptq_math.h"

namespace solverd::quant::internal {

double HessianScale(int64_t tokens) {
  return 2.0 / static_cast<double>(std::max<int64_t>(tokens, 1));
}

namespace {

// Sums over tokens are taken a tile of entries at a time over a block of
// tokens: each entry still adds its products in token order, exactly as
// HessianDot() (and the CUDA kernels) do, but 32 independent sums hide the
// latency of each addition, and a block's rows stay in cache.
constexpr int64_t kTileRows = 4, kTileCols = 8, kTokenBlock = 128;

// out[a][b] += sum over tokens [t0, t1) of x[t][a] y[t][b], for the 4 x 8
// entries from (a0, b0); x and y row-major with `cols` columns.
SOLVERD_CPU_CLONES void AddTile(const float* x, const float* y, int64_t cols, int64_t t0,
                                int64_t t1, int64_t a0, int64_t b0, double* out) {
  double acc[kTileRows][kTileCols];
  for (int i = 0; i < kTileRows; ++i) {
    for (int k = 0; k < kTileCols; ++k) acc[i][k] = out[(a0 + i) * cols + b0 + k];
  }
  for (int64_t t = t0; t < t1; ++t) {
    const float* xr = x + t * cols + a0;
    const float* yr = y + t * cols + b0;
    for (int i = 0; i < kTileRows; ++i) {
      const double xa = xr[i];
      for (int k = 0; k < kTileCols; ++k) acc[i][k] = acc[i][k] + xa * static_cast<double>(yr[k]);
    }
  }
  for (int i = 0; i < kTileRows; ++i) {
    for (int k = 0; k < kTileCols; ++k) out[(a0 + i) * cols + b0 + k] = acc[i][k];
  }
}

// out[a][b] += x[t][a] y[t][b] for the 4 x 8 entries from (a0, b0) at the
// one token t, as AddTile adds each: AddTile's AVX2 clone (GCC 12) loads a
// token's four x values together with the next token's, so at the last
// token of x it read past its end (and the server died where that was the
// end of a mapping).
void AddToken(const float* x, const float* y, int64_t cols, int64_t t, int64_t a0, int64_t b0,
              double* out) {
  for (int i = 0; i < kTileRows; ++i) {
    const double xa = x[t * cols + a0 + i];
    for (int k = 0; k < kTileCols; ++k) {
      double& sum = out[(a0 + i) * cols + b0 + k];
      sum = sum + xa * static_cast<double>(y[t * cols + b0 + k]);
    }
  }
}

// out[a][b] = sum_t x[t][a] y[t][b] (cols x cols) for every b (or, with
// `lower`, b <= a; the tiles along the diagonal also fill some b > a).
std::vector<double> SumsOverTokens(const float* x, const float* y, int64_t tokens, int64_t cols,
                                   bool lower, int threads) {
  std::vector<double> out(static_cast<size_t>(cols * cols), 0.0);
  const int64_t row_tiles = cols / kTileRows;
  // The columns [0, end) the tiles of the rows from a0 fill.
  const auto tiled_end = [&](int64_t a0) {
    return (lower ? a0 + kTileRows : cols) / kTileCols * kTileCols;
  };
  for (int64_t t0 = 0; t0 < tokens; t0 += kTokenBlock) {
    const int64_t t1 = std::min(tokens, t0 + kTokenBlock);
    ParallelFor(row_tiles, threads, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        // Short and long rows of the triangle alternate, so that each
        // thread's contiguous share holds about as many entries.
        const int64_t tile = lower ? (i % 2 == 0 ? i / 2 : row_tiles - 1 - i / 2) : i;
        const int64_t a0 = tile * kTileRows;
        for (int64_t b0 = 0; b0 < tiled_end(a0); b0 += kTileCols) {
          AddTile(x, y, cols, t0, std::min(t1, tokens - 1), a0, b0, out.data());
          if (t1 == tokens) AddToken(x, y, cols, tokens - 1, a0, b0, out.data());
        }
      }
    }, 1);
  }
  // What the tiles left, summed whole: the last rows, and each row's end.
  ParallelFor(cols, threads, [&](int64_t begin, int64_t end) {
    for (int64_t a = begin; a < end; ++a) {
      const int64_t covered = a < row_tiles * kTileRows ? tiled_end(a - a % kTileRows) : 0;
      for (int64_t b = covered; b < (lower ? a + 1 : cols); ++b) {
        out[a * cols + b] = HessianDot(x + a, y + b, tokens, cols);
      }
    }
  }, 1);
  return out;
}

}  // namespace

std::vector<double> SumOfOuterProducts(const float* inputs, int64_t tokens, int64_t cols,
                                       int threads) {
  std::vector<double> h = SumsOverTokens(inputs, inputs, tokens, cols, true, threads);
  MirrorLower(cols, &h);
  return h;
}

std::vector<double> SumOfCrossProducts(const float* a, const float* b, int64_t tokens,
                                       int64_t cols, int threads) {
  return SumsOverTokens(a, b, tokens, cols, false, threads);
}

std::vector<double> Hessian(const float* inputs, int64_t tokens, int64_t cols, int threads) {
  return ScaledHessian(SumOfOuterProducts(inputs, tokens, cols, threads), tokens);
}

std::vector<double> ScaledHessian(std::vector<double> sum, int64_t tokens) {
  const double scale = HessianScale(tokens);
  for (double& v : sum) v *= scale;
  return sum;
}

void MirrorLower(int64_t n, std::vector<double>* a) {
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = i + 1; j < n; ++j) (*a)[i * n + j] = (*a)[j * n + i];
  }
}

void DampHessian(double damp, int64_t cols, std::vector<double>* h, std::vector<uint8_t>* dead) {
  dead->assign(static_cast<size_t>(cols), 0);
  double diag_sum = 0;
  for (int64_t i = 0; i < cols; ++i) {
    double& d = (*h)[i * cols + i];
    if (d == 0) {
      (*dead)[i] = 1;
      d = 1;
    }
    diag_sum += d;
  }
  const double shift = damp * diag_sum / static_cast<double>(cols);
  for (int64_t i = 0; i < cols; ++i) (*h)[i * cols + i] += shift;
}

std::vector<int64_t> ActOrder(const std::vector<double>& h, int64_t cols) {
  std::vector<int64_t> perm(static_cast<size_t>(cols));
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) {
    return h[a * cols + a] > h[b * cols + b];
  });
  return perm;
}

std::vector<double> PermuteSymmetric(const std::vector<double>& h, int64_t cols,
                                     const std::vector<int64_t>& perm) {
  std::vector<double> out(h.size());
  for (int64_t i = 0; i < cols; ++i) {
    for (int64_t j = 0; j < cols; ++j) out[i * cols + j] = h[perm[i] * cols + perm[j]];
  }
  return out;
}

namespace {

// sum_k a[k] * b[k] over four partial sums: the factorisations' inner loop,
// which a single running sum would hold to one add per latency.
double Dot(const double* a, const double* b, int64_t n) {
  double s[4] = {0, 0, 0, 0};
  int64_t k = 0;
  for (; k + 4 <= n; k += 4) {
    for (int i = 0; i < 4; ++i) s[i] += a[k + i] * b[k + i];
  }
  for (; k < n; ++k) s[0] += a[k] * b[k];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

// Rows below the diagonal per thread, at least: one row is a dot product of
// up to n terms, too little to hand a thread alone.
constexpr int64_t kRowsPerThread = 32;

// The inverse of the lower triangular `l` (n x n), row-major, lower part
// only (zero above the diagonal). Column j of the inverse solves
// l x = e_j by forward substitution over rows j..n-1, reading rows of `l`
// contiguously; columns are independent, dealt round-robin to threads so
// the long early columns spread out.
std::vector<double> InvertLower(int64_t n, const std::vector<double>& l, int threads) {
  std::vector<double> inv(static_cast<size_t>(n * n), 0.0);
  const int64_t tasks = std::min<int64_t>(n, 4 * std::max(threads, 1));
  ParallelFor(tasks, threads, [&](int64_t begin, int64_t end) {
    std::vector<double> x(static_cast<size_t>(n));
    for (int64_t task = begin; task < end; ++task) {
      for (int64_t j = task; j < n; j += tasks) {
        x[j] = 1.0 / l[j * n + j];
        for (int64_t i = j + 1; i < n; ++i) {
          x[i] = -Dot(&l[i * n + j], &x[j], i - j) / l[i * n + i];
        }
        for (int64_t i = j; i < n; ++i) inv[i * n + j] = x[i];
      }
    }
  }, 1);
  return inv;
}

}  // namespace

bool CholeskyLower(int64_t n, int threads, std::vector<double>* a) {
  double* m = a->data();
  for (int64_t j = 0; j < n; ++j) {
    const double d = m[j * n + j] - Dot(&m[j * n], &m[j * n], j);
    if (!(d > 0) || !std::isfinite(d)) return false;
    const double root = std::sqrt(d);
    m[j * n + j] = root;
    ParallelFor(n - j - 1, threads, [&](int64_t begin, int64_t end) {
      for (int64_t i = j + 1 + begin; i < j + 1 + end; ++i) {
        m[i * n + j] = (m[i * n + j] - Dot(&m[i * n], &m[j * n], j)) / root;
      }
    }, kRowsPerThread);
  }
  return true;
}

namespace {

// LAPACK's Fortran interface (string lengths passed at the end), found at
// run time: linked in, OpenBLAS's 60 KiB of thread-local storage would be
// carved out of every thread's stack at start-up, overflowing the small
// stacks some libraries give their threads (the metrics server's); loaded
// with dlopen, it lives in dynamic TLS instead.
using Dpotrf = void (*)(const char* uplo, const int* n, double* a, const int* lda, int* info,
                        size_t);
using Dtrtri = void (*)(const char* uplo, const char* diag, const int* n, double* a,
                        const int* lda, int* info, size_t, size_t);
struct Lapack {
  Dpotrf dpotrf = nullptr;
  Dtrtri dtrtri = nullptr;
};

// The host LAPACK (Debian's alternatives point liblapack.so.3 at OpenBLAS
// when libopenblas0-pthread is installed), or null.
const Lapack* HostLapack() {
  static const Lapack* const kLapack = []() -> const Lapack* {
    for (const char* name : {"liblapack.so.3", "libopenblas.so.0"}) {
      void* library = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (library == nullptr) continue;
      Lapack found;
      found.dpotrf = reinterpret_cast<Dpotrf>(dlsym(library, "dpotrf_"));
      found.dtrtri = reinterpret_cast<Dtrtri>(dlsym(library, "dtrtri_"));
      if (found.dpotrf != nullptr && found.dtrtri != nullptr) return new Lapack(found);
      dlclose(library);
    }
    return nullptr;
  }();
  return kLapack;
}

}  // namespace

namespace {

constexpr char kNotPositiveDefinite[] =
    "the damped Hessian of the calibration inputs is not positive definite (raise damp)";

// `a` (n x n, row-major, symmetric positive definite) replaced by the
// inverse of its lower Cholesky factor, zero above the diagonal.
Status InverseLowerFactorHandRolled(int64_t n, int threads, std::vector<double>* a) {
  if (!CholeskyLower(n, threads, a)) return InvalidArgument(kNotPositiveDefinite);
  for (int64_t i = 0; i < n; ++i) {  // L's upper part is H's: clear it
    for (int64_t j = i + 1; j < n; ++j) (*a)[i * n + j] = 0;
  }
  *a = InvertLower(n, *a, threads);
  return Status::Ok();
}

// The same by LAPACK's blocked dpotrf and dtrtri, in place. A row-major
// matrix is the column-major transpose, so the column-major upper factor
// U (A = U^T U) is the row-major lower L.
Status InverseLowerFactorLapack(const Lapack& lapack, int64_t n, std::vector<double>* a) {
  const int size = static_cast<int>(n);
  int info = 0;
  lapack.dpotrf("U", &size, a->data(), &size, &info, 1);
  if (info > 0) return InvalidArgument(kNotPositiveDefinite);
  if (info == 0) lapack.dtrtri("U", "N", &size, a->data(), &size, &info, 1, 1);
  if (info != 0) return Internal("LAPACK failed (info " + std::to_string(info) + ")");
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = i + 1; j < n; ++j) (*a)[i * n + j] = 0;
  }
  return Status::Ok();
}

}  // namespace

bool HaveLapack() { return HostLapack() != nullptr; }

Status TowardReferenceOutputs(std::vector<double> h, const std::vector<double>& drift,
                              double damp, int64_t rows, int64_t cols, int threads,
                              std::vector<float>* weights) {
  std::vector<uint8_t> dead;
  DampHessian(damp, cols, &h, &dead);
  const Lapack* lapack = HostLapack();  // h becomes M = L^-1, H = L L^T
  SOLVERD_RETURN_IF_ERROR(lapack != nullptr ? InverseLowerFactorLapack(*lapack, cols, &h)
                                            : InverseLowerFactorHandRolled(cols, threads, &h));
  // Row by row: w += z^T, z = H^-1 drift w^T = M^T M (drift w^T).
  ParallelFor(rows, threads, [&](int64_t begin, int64_t end) {
    std::vector<double> w(static_cast<size_t>(cols)), g(w.size()), z(w.size());
    for (int64_t r = begin; r < end; ++r) {
      float* row = weights->data() + r * cols;
      std::copy(row, row + cols, w.begin());
      for (int64_t i = 0; i < cols; ++i) g[i] = Dot(&drift[i * cols], w.data(), cols);
      std::fill(z.begin(), z.end(), 0.0);
      for (int64_t i = 0; i < cols; ++i) {
        const double u = Dot(&h[i * cols], g.data(), i + 1);  // (M g)_i
        for (int64_t k = 0; k <= i; ++k) z[k] += u * h[i * cols + k];
      }
      for (int64_t k = 0; k < cols; ++k) row[k] = static_cast<float>(w[k] + z[k]);
    }
  }, 1);
  return Status::Ok();
}

// With H = R R^T for an upper triangular R, H^-1 = R^-T R^-1, and R^-1 is
// upper triangular with a positive diagonal: it is U. R is the lower
// Cholesky factor of H with rows and columns reversed (J H J = L L^T gives
// H = (J L J)(J L J)^T), so U = J L^-1 J: one factorisation and one
// triangular inverse, where inverting H and factoring H^-1 took four.
Status InverseCholeskyUpper(int64_t n, int threads, std::vector<double>* h,
                            Factorization how) {
  std::vector<double>& a = *h;
  std::vector<double> reversed(a.size());
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) reversed[i * n + j] = a[(n - 1 - i) * n + (n - 1 - j)];
  }
  const Lapack* lapack = how == Factorization::kLibrary ? HostLapack() : nullptr;
  SOLVERD_RETURN_IF_ERROR(lapack != nullptr
                              ? InverseLowerFactorLapack(*lapack, n, &reversed)
                              : InverseLowerFactorHandRolled(n, threads, &reversed));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) a[i * n + j] = reversed[(n - 1 - i) * n + (n - 1 - j)];
  }
  return Status::Ok();
}

}  // namespace solverd::quant::internal
