#include "quant/gptq_hessian.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/parallel_for.h"
#include "quant/gptq_math.h"

namespace solverd::quant::internal {

double HessianScale(int64_t tokens) {
  return 2.0 / static_cast<double>(std::max<int64_t>(tokens, 1));
}

std::vector<double> Hessian(const float* inputs, int64_t tokens, int64_t cols, int threads) {
  // Column-major copy so each entry is a dot product of contiguous rows.
  std::vector<double> xt(static_cast<size_t>(cols * tokens));
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t c = 0; c < cols; ++c) xt[c * tokens + t] = inputs[t * cols + c];
  }
  std::vector<double> h(static_cast<size_t>(cols * cols));
  const double scale = HessianScale(tokens);
  ParallelFor(cols, threads, [&](int64_t begin, int64_t end) {
    for (int64_t a = begin; a < end; ++a) {
      for (int64_t b = 0; b <= a; ++b) {
        h[a * cols + b] = HessianDot(&xt[a * tokens], &xt[b * tokens], tokens, 1) * scale;
      }
    }
  }, 1);
  MirrorLower(cols, &h);
  return h;
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

bool CholeskyLower(int64_t n, std::vector<double>* a) {
  double* m = a->data();
  for (int64_t j = 0; j < n; ++j) {
    double d = m[j * n + j];
    for (int64_t k = 0; k < j; ++k) d -= m[j * n + k] * m[j * n + k];
    if (!(d > 0) || !std::isfinite(d)) return false;
    d = std::sqrt(d);
    m[j * n + j] = d;
    for (int64_t i = j + 1; i < n; ++i) {
      double s = m[i * n + j];
      const double* ri = &m[i * n];
      const double* rj = &m[j * n];
      for (int64_t k = 0; k < j; ++k) s -= ri[k] * rj[k];
      m[i * n + j] = s / d;
    }
  }
  return true;
}

Status InverseCholeskyUpper(int64_t n, std::vector<double>* h) {
  std::vector<double>& a = *h;
  if (!CholeskyLower(n, &a)) {
    return InvalidArgument("the damped Hessian of the calibration inputs is not positive "
                           "definite (raise damp)");
  }
  // Linv = L^-1 (lower), by forward substitution column by column.
  std::vector<double> linv(static_cast<size_t>(n * n), 0.0);
  for (int64_t j = 0; j < n; ++j) {
    linv[j * n + j] = 1.0 / a[j * n + j];
    for (int64_t i = j + 1; i < n; ++i) {
      double s = 0;
      for (int64_t k = j; k < i; ++k) s -= a[i * n + k] * linv[k * n + j];
      linv[i * n + j] = s / a[i * n + i];
    }
  }
  // H^-1 = Linv^T Linv.
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j <= i; ++j) {
      double s = 0;
      for (int64_t k = i; k < n; ++k) s += linv[k * n + i] * linv[k * n + j];
      a[i * n + j] = s;
      a[j * n + i] = s;
    }
  }
  if (!CholeskyLower(n, &a)) {
    return InvalidArgument("the inverse Hessian of the calibration inputs is not positive "
                           "definite (raise damp)");
  }
  // U = L^T: move the factor above the diagonal and clear below it.
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < i; ++j) {
      a[j * n + i] = a[i * n + j];
      a[i * n + j] = 0;
    }
  }
  return Status::Ok();
}

}  // namespace solverd::quant::internal
