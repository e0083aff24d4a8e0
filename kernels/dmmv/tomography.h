// Discrete tomography as a DMMV problem: recover an n x n image whose
// pixels take a few known grey levels from its parallel-beam projections
// (a sinogram). Two formulations:
//  - noise-free (noise_bound 0): the largest projection residual is
//    smallest, the min-max criterion itself;
//  - under noise the user states (noise_bound > 0, the largest |noise| of
//    a ray): a regularized least-squares fit, minimizing
//      sum_rays r^2 / (2 sigma^2) + smoothness * sum_neighbours ((v_p - v_q) / range)^2
//    with sigma = noise_bound / sqrt 3 (uniform noise's deviation) and range
//    the highest level less the lowest (on a binary image the count of
//    unequal neighbours; on more levels, a small step costs less than the
//    whole range, the square of its share); one DMMV row per ray and per pair of
//    4-neighbours, searched with Options::least_squares. Min-max there fits
//    the noise on the worst rays (bench/results/dmmv.md: more wrong pixels
//    than SART rounded); so did a bound |r| <= noise_bound, and so does
//    least squares without the smoothness rows. Solve() then reweights the
//    neighbour rows from the image found and solves again
//    (ReweightSmoothness).
//
// The projector is pixel-driven: pixel (r, c), centred at x = c - (n-1)/2,
// y = (n-1)/2 - r in pixel units, projects at angle theta onto the detector
// coordinate s = x cos(theta) + y sin(theta) and splits its unit mass
// between the two nearest detectors (spacing one pixel, centred on the
// rotation axis) by linear interpolation. Angles are pi * a / angles.
// Pure functions, safe from any thread.
#ifndef SOLVERD_KERNELS_DMMV_TOMOGRAPHY_H_
#define SOLVERD_KERNELS_DMMV_TOMOGRAPHY_H_

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "dmmv/dmmv.h"

namespace solverd::dmmv::tomography {

// Continuous reconstructions, used as the DMMV start (rounded to the
// levels) and as baselines: SART updates the image one angle at a time,
// SIRT from all rays at once. Both clip to [lowest, highest level].
// kBest computes both and starts from the one whose rounding has the
// better objective (neither wins everywhere: of the benchmark's 24 noisy
// cases SIRT rounded had fewer wrong pixels on 20, SART on one).
enum class Method { kSart, kSirt, kBest };

inline constexpr double kDefaultSettledWithin = 0.35;
inline constexpr double kDefaultSmoothness = 2;
// Under noise_bound, solves after the first, each with the neighbour rows
// reweighted from the last image (ReweightSmoothness).
inline constexpr int kDefaultReweightRounds = 2;

struct Spec {
  int size = 0;       // n: the image is n x n, row-major; 1 .. 1024
  int angles = 0;     // 1 .. 4096
  int detectors = 0;  // per angle; 0: DefaultDetectors(size)
  std::vector<double> levels;    // grey levels, strictly increasing, at least 2
  std::vector<double> sinogram;  // angles x detectors, angle-major
  Method start = Method::kSart;
  int start_iterations = 0;  // 0: the method's default (SART 30, SIRT 300)
  // A pixel whose continuous start lies within this fraction of the gap
  // between levels from its nearest level keeps that level; the others
  // choose between the two levels around their start. 0: every pixel may
  // take every level. In [0, 0.5).
  double settled_within = kDefaultSettledWithin;
  // The largest |noise| of a ray, in sinogram units; 0: noise-free (min-max).
  double noise_bound = 0;
  // The weight of the neighbour rows with noise_bound > 0; >= 0.
  double smoothness = kDefaultSmoothness;
  int reweight_rounds = kDefaultReweightRounds;  // >= 0; with noise_bound only

  bool least_squares() const { return noise_bound > 0; }
};

// Enough detectors for every pixel at every angle: ceil(n sqrt 2) + 1.
int DefaultDetectors(int size);

// The spec's detectors per angle (its own, or DefaultDetectors), and its
// rays: the problem rows Build puts first.
int Detectors(const Spec& spec);
int64_t Rays(const Spec& spec);

// INVALID_ARGUMENT naming the field ("tomography.sinogram", ...).
Status Validate(const Spec& spec);

// The (angles * detectors) x (n * n) projection matrix.
CsrMatrix Projector(int size, int angles, int detectors);

// y = A x.
std::vector<double> Project(const CsrMatrix& a, const std::vector<double>& image);

// `iterations` sweeps of `method` from a zero image, clipped to [lo, hi].
std::vector<double> Reconstruct(const CsrMatrix& a, int64_t pixels, int angles,
                                const std::vector<double>& sinogram, Method method,
                                int iterations, double lo, double hi);

// A test image: a large ellipse on the lowest level, with `ellipses`
// random smaller ones painted over it in random levels (never the lowest
// for the large one). Deterministic given the seed; for tests and benches.
std::vector<double> Phantom(int size, const std::vector<double>& levels, int ellipses,
                            uint64_t seed);

// A one-instance problem over the spec's levels, started from the
// continuous reconstruction rounded to them; that reconstruction is
// returned in `start_image`. Its first angles x detectors rows are the
// rays; with noise_bound the smoothness rows follow. Solve it with
// Options::least_squares = spec.least_squares().
Status Build(const Spec& spec, Problem* problem, std::vector<double>* start_image);

// Reweights Build's neighbour rows from `image` (iteratively reweighted
// least squares towards a Potts prior, which counts jumps, not their
// squares): row (p, q) gets sqrt(smoothness) / max(|v_p - v_q|, the
// smallest level gap), so a jump already in the image costs about
// `smoothness` whatever its height, and a new one more the smaller it is.
// The squared prior alone prefers a staircase to a sharp 0 -> 3 edge.
void ReweightSmoothness(const Spec& spec, const std::vector<double>& image, Problem* problem);

// Solves Build's problem (with Options::least_squares as the spec says),
// then under noise_bound spec.reweight_rounds more times, each reweighted
// from and started at the last result. `result` is the last solve's; its
// seconds are all the solves'. A cancel or deadline returns the best so far.
Status Solve(const Device& device, StreamHandle stream, const Spec& spec, Problem* problem,
             Options options, ProgressSink* sink, const CancelToken* cancel, Result* result);

// Each pixel at its nearest level.
std::vector<double> RoundToLevels(const std::vector<double>& image,
                                  const std::vector<double>& levels);

// max over the rays of |(A image) - sinogram|, unweighted: what the image
// leaves unexplained, whichever formulation found it. `problem` is Build's.
double MaxRayResidual(const Problem& problem, int64_t rays, const std::vector<double>& image);

}  // namespace solverd::dmmv::tomography

#endif  // SOLVERD_KERNELS_DMMV_TOMOGRAPHY_H_
