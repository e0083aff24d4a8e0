// The Tuner subclasses, one per TunerAlgorithm; internal to tuner.cc and
// the tests that look at their sampling distributions.
// Like every Tuner, each is thread-safe through the base class's lock.
#ifndef SOLVERD_KERNELS_SOR_TUNER_ALGORITHMS_H_
#define SOLVERD_KERNELS_SOR_TUNER_ALGORITHMS_H_

#include <memory>
#include <vector>

#include "sor/tuner.h"

namespace solverd::sor::internal {

// Tsallis-INF's distribution for cumulative normalised losses `losses` at
// learning rate eta: p_i = 4 / (eta (losses_i - x))^2 with x chosen by
// Newton's method so that the p_i sum to one.
std::vector<double> TsallisProbabilities(const std::vector<double>& losses, double eta);

// Chebyshev polynomials T_0(u) .. T_{terms-1}(u).
std::vector<double> ChebyshevFeatures(double u, int terms);

std::unique_ptr<Tuner> MakeTuner(const TunerConfig& config);

}  // namespace solverd::sor::internal

#endif  // SOLVERD_KERNELS_SOR_TUNER_ALGORITHMS_H_
