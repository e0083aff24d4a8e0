// The host half of GPTQ: the damped Hessian H = 2 X^T X / tokens of the
// calibration inputs and the upper Cholesky factor U of H^-1 that the
// error feedback uses (w_k -= err_j * U[j][k] / ... for k > j). Dead
// columns (diag H = 0: an input that is always zero) get H[i][i] = 1 and
// their weights are zeroed. Float64 throughout. Thread-compatible.
#ifndef SOLVERD_KERNELS_QUANT_GPTQ_HESSIAN_H_
#define SOLVERD_KERNELS_QUANT_GPTQ_HESSIAN_H_

#include <cstdint>
#include <vector>

#include "common/status.h"

namespace solverd::quant::internal {

// 2 / tokens: H = HessianScale * X^T X.
double HessianScale(int64_t tokens);

// sum_t x_t x_t^T (cols x cols, row-major) of inputs (tokens x cols), each
// entry summed in token order by HessianDot(): the Hessian a calibration
// file holds.
std::vector<double> SumOfOuterProducts(const float* inputs, int64_t tokens, int64_t cols,
                                       int threads);

// sum_k a_k b_k^T (cols x cols, row-major, not symmetric) over the rows of
// a and b (tokens x cols each), each entry summed in token order by
// HessianDot() as SumOfOuterProducts() sums.
std::vector<double> SumOfCrossProducts(const float* a, const float* b, int64_t tokens,
                                       int64_t cols, int threads);

// Moves W (rows x cols) to the weights whose outputs on the inputs x' that
// `h` = sum x' x'^T sums come closest, in least squares, to W's outputs on
// reference inputs x, given `drift` = sum x' (x - x')^T over the same
// tokens: W += W drift^T (H + damp mean(diag H) I)^-1 (H damped as GPTQ
// damps it). GPTQ from H then rounds toward the reference outputs: in
// sequential calibration x' is what the quantized layers before produce and
// x what the unquantized model does (GPTAQ's asymmetric calibration).
// INVALID_ARGUMENT when the damped H is not positive definite.
Status TowardReferenceOutputs(std::vector<double> h, const std::vector<double>& drift,
                              double damp, int64_t rows, int64_t cols, int threads,
                              std::vector<float>* weights);

// H (cols x cols, row-major) from inputs (tokens x cols):
// ScaledHessian(SumOfOuterProducts(...)).
std::vector<double> Hessian(const float* inputs, int64_t tokens, int64_t cols, int threads);

// H from sum_k x_k x_k^T over `tokens` inputs (SumOfOuterProducts(), or
// a Hessian a calibration file gave): each entry times HessianScale(tokens),
// so a sum computed in SumOfOuterProducts()'s order gives Hessian()'s H.
std::vector<double> ScaledHessian(std::vector<double> sum, int64_t tokens);

// Copies the lower triangle of the n x n matrix `a` onto its upper one.
void MirrorLower(int64_t n, std::vector<double>* a);

// Marks dead columns (dead[i] = 1, H[i][i] = 1) and adds damp * mean(diag).
void DampHessian(double damp, int64_t cols, std::vector<double>* h, std::vector<uint8_t>* dead);

// The columns in order of decreasing diag(H) (act-order), ties by index.
std::vector<int64_t> ActOrder(const std::vector<double>& h, int64_t cols);

// Permutes rows and columns of H: result[i][j] = h[perm[i]][perm[j]].
std::vector<double> PermuteSymmetric(const std::vector<double>& h, int64_t cols,
                                     const std::vector<int64_t>& perm);

// How InverseCholeskyUpper() factors: by the host LAPACK when the machine
// has one (liblapack.so.3, which Debian's alternatives point at OpenBLAS
// with libopenblas0-pthread; its blocked algorithms run on OpenBLAS's own
// threads), else by the loops below on `threads` threads; kHandRolled
// always by the loops.
enum class Factorization { kLibrary, kHandRolled };
bool HaveLapack();

// Replaces H by the upper factor U of H^-1 (H^-1 = U^T U; zero below the
// diagonal). INVALID_ARGUMENT when H is not positive definite. Both
// backends factor on the host, so they share U.
Status InverseCholeskyUpper(int64_t cols, int threads, std::vector<double>* h,
                            Factorization how = Factorization::kLibrary);

// In place lower Cholesky factor of a symmetric positive definite matrix
// (the upper triangle is left as is); false when not positive definite.
bool CholeskyLower(int64_t n, int threads, std::vector<double>* a);

}  // namespace solverd::quant::internal

#endif  // SOLVERD_KERNELS_QUANT_GPTQ_HESSIAN_H_
