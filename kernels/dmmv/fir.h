// FIR filter design as a DMMV problem: a type-I linear-phase filter of even
// order 2M with coefficients of p bits, whose amplitude response
//   A(w) = h_M + sum_{n=1..M} 2 h_{M-n} cos(n w)
// is closest, in the largest deviation, to 1 on the passband(s) and 0 on
// the stopband(s). Variables are (h_0, ..., h_M); rows are
// [2cos(M w), ..., 2cos(w), 1] over 16 grid points per unit of order in
// the bands; levels are k / 2^(p-1) for k = -2^(p-1) .. 2^(p-1) - 1.
// Pure functions, safe from any thread.
#ifndef SOLVERD_KERNELS_DMMV_FIR_H_
#define SOLVERD_KERNELS_DMMV_FIR_H_

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "dmmv/dmmv.h"

namespace solverd::dmmv::fir {

enum class Type { kLowPass, kHighPass, kBandPass };

struct Spec {
  Type type = Type::kLowPass;
  int order = 0;  // even, 2 .. 1000
  // Band edges as fractions of the Nyquist frequency, increasing in (0, 1):
  // low-pass {pass end, stop start}; high-pass {stop end, pass start};
  // band-pass {stop end, pass start, pass end, stop start}.
  std::vector<double> edges;
  int bits = 8;  // 2 .. 24
};

// INVALID_ARGUMENT naming the field.
Status Validate(const Spec& spec);

// A one-instance problem, started from the least-squares coefficients
// rounded to the levels.
Status Build(const Spec& spec, Problem* problem);

struct Response {
  double passband_deviation = 0;  // max |A(w) - 1| on the passband(s)
  double stopband_peak = 0;       // max |A(w)| on the stopband(s)
  double max_error = 0;           // the larger of the two
};

// The response of half-coefficients `h` (h_0..h_M) checked on 16,384
// frequencies over [0, pi].
Response Evaluate(const Spec& spec, const std::vector<double>& h);

// The whole impulse response (2M + 1 taps) as integers k (tap = k / 2^(p-1)).
std::vector<int64_t> IntegerTaps(const Spec& spec, const InstanceResult& result);

}  // namespace solverd::dmmv::fir

#endif  // SOLVERD_KERNELS_DMMV_FIR_H_
