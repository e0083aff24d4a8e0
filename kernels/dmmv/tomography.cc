#include "dmmv/tomography.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

namespace solverd::dmmv::tomography {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int64_t kMaxPixelAngles = int64_t{1} << 26;  // size^2 * angles
// Relaxation: SART's per-angle steps overshoot on noisy data at 1.
constexpr double kSartRelaxation = 0.5;
constexpr double kSirtRelaxation = 1.0;

// The (row, weight) pairs pixel (r, c) contributes at one angle.
struct Footprint {
  int first = 0;  // detector of weight 1 - frac; first + 1 gets frac
  double frac = 0;
};

Footprint PixelFootprint(int size, int detectors, int r, int c, double cos_t, double sin_t) {
  const double half = (size - 1) / 2.0;
  const double s = (c - half) * cos_t + (half - r) * sin_t;
  const double p = s + (detectors - 1) / 2.0;
  const double first = std::floor(p);
  return {static_cast<int>(first), p - first};
}

// The levels each pixel may take (one set for all when settled_within is
// 0). Under noise the search otherwise trades pixels the reconstruction
// already has right for a smaller largest residual: on the four-level
// phantoms it ended with more wrong pixels than it started from.
std::vector<Levels> PixelLevels(const std::vector<double>& levels,
                                const std::vector<double>& start, double settled_within) {
  std::vector<Levels> out(settled_within > 0 ? start.size() : 1);
  if (settled_within <= 0) {
    out[0].values = levels;
    return out;
  }
  for (size_t p = 0; p < start.size(); ++p) {
    const auto above = std::upper_bound(levels.begin(), levels.end(), start[p]);
    const size_t hi = std::clamp<size_t>(above - levels.begin(), 1, levels.size() - 1);
    const double lo_level = levels[hi - 1], hi_level = levels[hi];
    const double at = (start[p] - lo_level) / (hi_level - lo_level);
    if (at <= settled_within) {
      out[p].values = {lo_level};
    } else if (at >= 1 - settled_within) {
      out[p].values = {hi_level};
    } else {
      out[p].values = {lo_level, hi_level};
    }
  }
  return out;
}

// (A image)_k.
double ProjectRow(const CsrMatrix& a, int64_t k, const std::vector<double>& image) {
  double y = 0;
  for (int64_t e = a.row_offsets[k]; e < a.row_offsets[k + 1]; ++e) {
    y += a.values[e] * image[a.columns[e]];
  }
  return y;
}

// Rays weighted 1 / (sigma sqrt 2), sigma = noise_bound / sqrt 3, and one
// row v_p - v_q (b = 0) per pair of 4-neighbours weighted
// sqrt(smoothness) / (level range): their weighted sum of squares is the
// objective of the file comment.
void AddSmoothness(const Spec& spec, CsrMatrix* x, Instance* inst) {
  const double ray_weight = std::sqrt(1.5) / spec.noise_bound;
  inst->weights.assign(inst->b.size(), ray_weight);
  if (spec.smoothness == 0) return;
  const double range = spec.levels.back() - spec.levels.front();
  const double pair_weight = std::sqrt(spec.smoothness) / range;
  const int n = spec.size;
  for (int r = 0; r < n; ++r) {
    for (int c = 0; c < n; ++c) {
      const int32_t p = r * n + c;
      for (const int32_t q : {c + 1 < n ? p + 1 : -1, r + 1 < n ? p + n : -1}) {
        if (q < 0) continue;
        x->columns.insert(x->columns.end(), {p, q});
        x->values.insert(x->values.end(), {1.0, -1.0});
        x->row_offsets.push_back(static_cast<int64_t>(x->columns.size()));
        inst->b.push_back(0);
        inst->weights.push_back(pair_weight);
      }
    }
  }
}

// The objective of a continuous image rounded to the levels, to choose the
// start: (t, sum of squares), compared as the search will.
struct StartScore {
  double t = 0, sum_squares = 0;
  bool Better(const StartScore& o, bool least_squares) const {
    if (!least_squares && t != o.t) return t < o.t;
    return sum_squares < o.sum_squares;
  }
};

StartScore ScoreRounded(const Problem& p, const Instance& inst, const Spec& spec,
                        const std::vector<double>& image) {
  const std::vector<double> projected = Project(p.x_csr, RoundToLevels(image, spec.levels));
  StartScore score;
  for (size_t k = 0; k < projected.size(); ++k) {
    const double w = inst.weights.empty() ? 1.0 : inst.weights[k];
    const double v = w * std::fabs(projected[k] - inst.b[k]);
    score.t = std::max(score.t, v);
    score.sum_squares += v * v;
  }
  return score;
}

}  // namespace

int DefaultDetectors(int size) {
  return static_cast<int>(std::ceil(size * std::sqrt(2.0))) + 1;
}

int Detectors(const Spec& spec) {
  return spec.detectors > 0 ? spec.detectors : DefaultDetectors(spec.size);
}

int64_t Rays(const Spec& spec) { return int64_t{spec.angles} * Detectors(spec); }

Status Validate(const Spec& spec) {
  if (spec.size < 1 || spec.size > 1024) {
    return InvalidArgument("tomography.size: must be 1 .. 1024");
  }
  if (spec.angles < 1 || spec.angles > 4096) {
    return InvalidArgument("tomography.angles: must be 1 .. 4096");
  }
  if (int64_t{spec.size} * spec.size * spec.angles > kMaxPixelAngles) {
    return InvalidArgument("tomography: size^2 * angles must be at most 2^26");
  }
  if (spec.detectors < 0 || spec.detectors > 8192) {
    return InvalidArgument("tomography.detectors: must be 0 (enough for the image) .. 8192");
  }
  if (spec.levels.size() < 2) return InvalidArgument("tomography.levels: needs at least 2 levels");
  for (size_t i = 0; i < spec.levels.size(); ++i) {
    if (!std::isfinite(spec.levels[i]) || (i > 0 && !(spec.levels[i] > spec.levels[i - 1]))) {
      return InvalidArgument("tomography.levels[" + std::to_string(i) +
                             "]: levels must be finite and strictly increasing");
    }
  }
  const int64_t rays = Rays(spec);
  if (static_cast<int64_t>(spec.sinogram.size()) != rays) {
    return InvalidArgument("tomography.sinogram: has " + std::to_string(spec.sinogram.size()) +
                           " values, angles x detectors is " + std::to_string(rays));
  }
  for (size_t i = 0; i < spec.sinogram.size(); ++i) {
    if (!std::isfinite(spec.sinogram[i])) {
      return InvalidArgument("tomography.sinogram[" + std::to_string(i) + "]: not finite");
    }
  }
  if (spec.start_iterations < 0) return InvalidArgument("tomography.start_iterations: negative");
  if (!(spec.settled_within >= 0 && spec.settled_within < 0.5)) {
    return InvalidArgument("tomography.settled_within: must be in [0, 0.5)");
  }
  if (!(spec.noise_bound >= 0 && std::isfinite(spec.noise_bound))) {
    return InvalidArgument("tomography.noise_bound: must be finite and non-negative");
  }
  if (!(spec.smoothness >= 0 && std::isfinite(spec.smoothness))) {
    return InvalidArgument("tomography.smoothness: must be finite and non-negative");
  }
  if (spec.reweight_rounds < 0 || spec.reweight_rounds > 16) {
    return InvalidArgument("tomography.reweight_rounds: must be 0 .. 16");
  }
  return Status::Ok();
}

CsrMatrix Projector(int size, int angles, int detectors) {
  const int64_t pixels = int64_t{size} * size;
  CsrMatrix a;
  a.row_offsets.assign(int64_t{angles} * detectors + 1, 0);
  // Two passes: count each ray's pixels, then place them (pixels in
  // increasing order, so each row's columns increase).
  for (int pass = 0; pass < 2; ++pass) {
    std::vector<int64_t> next;
    if (pass == 1) {
      for (size_t k = 1; k < a.row_offsets.size(); ++k) a.row_offsets[k] += a.row_offsets[k - 1];
      a.columns.resize(a.row_offsets.back());
      a.values.resize(a.row_offsets.back());
      next.assign(a.row_offsets.begin(), a.row_offsets.end() - 1);
    }
    for (int t = 0; t < angles; ++t) {
      const double theta = kPi * t / angles;
      const double cos_t = std::cos(theta), sin_t = std::sin(theta);
      for (int64_t j = 0; j < pixels; ++j) {
        const Footprint f = PixelFootprint(size, detectors, static_cast<int>(j / size),
                                           static_cast<int>(j % size), cos_t, sin_t);
        const int hit[2] = {f.first, f.first + 1};
        const double weight[2] = {1 - f.frac, f.frac};
        for (int h = 0; h < 2; ++h) {
          if (hit[h] < 0 || hit[h] >= detectors || weight[h] == 0) continue;
          const int64_t row = int64_t{t} * detectors + hit[h];
          if (pass == 0) {
            ++a.row_offsets[row + 1];
          } else {
            a.columns[next[row]] = static_cast<int32_t>(j);
            a.values[next[row]++] = weight[h];
          }
        }
      }
    }
  }
  return a;
}

std::vector<double> Project(const CsrMatrix& a, const std::vector<double>& image) {
  std::vector<double> y(a.row_offsets.size() - 1);
  for (size_t k = 0; k < y.size(); ++k) y[k] = ProjectRow(a, static_cast<int64_t>(k), image);
  return y;
}

std::vector<double> Reconstruct(const CsrMatrix& a, int64_t pixels, int angles,
                                const std::vector<double>& sinogram, Method method,
                                int iterations, double lo, double hi) {
  const int64_t rays = static_cast<int64_t>(a.row_offsets.size()) - 1;
  const int64_t per_block = method == Method::kSart ? rays / angles : rays;
  const double relaxation = method == Method::kSart ? kSartRelaxation : kSirtRelaxation;
  std::vector<double> x(pixels, 0.0), step(pixels), mass(pixels);
  for (int it = 0; it < iterations; ++it) {
    for (int64_t first = 0; first < rays; first += per_block) {  // SART: one angle a block
      std::fill(step.begin(), step.end(), 0.0);
      std::fill(mass.begin(), mass.end(), 0.0);
      for (int64_t k = first; k < first + per_block; ++k) {
        double projected = 0, row_sum = 0;
        for (int64_t e = a.row_offsets[k]; e < a.row_offsets[k + 1]; ++e) {
          projected += a.values[e] * x[a.columns[e]];
          row_sum += a.values[e];
        }
        if (row_sum == 0) continue;
        const double correction = (sinogram[k] - projected) / row_sum;
        for (int64_t e = a.row_offsets[k]; e < a.row_offsets[k + 1]; ++e) {
          step[a.columns[e]] += a.values[e] * correction;
          mass[a.columns[e]] += a.values[e];
        }
      }
      for (int64_t j = 0; j < pixels; ++j) {
        if (mass[j] > 0) x[j] = std::clamp(x[j] + relaxation * step[j] / mass[j], lo, hi);
      }
    }
  }
  return x;
}

std::vector<double> Phantom(int size, const std::vector<double>& levels, int ellipses,
                            uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(0, 1);
  std::vector<double> image(int64_t{size} * size, levels.front());
  auto paint = [&](double cx, double cy, double rx, double ry, double angle, double level) {
    const double c = std::cos(angle), s = std::sin(angle);
    for (int r = 0; r < size; ++r) {
      for (int col = 0; col < size; ++col) {
        const double x = (col + 0.5) / size - cx, y = (r + 0.5) / size - cy;
        const double u = (x * c + y * s) / rx, v = (y * c - x * s) / ry;
        if (u * u + v * v <= 1) image[int64_t{r} * size + col] = level;
      }
    }
  };
  const auto level_count = static_cast<int64_t>(levels.size());
  auto any_level = [&](int64_t from) {  // uniform over levels[from ..]
    const double spread = static_cast<double>(level_count - from);
    return levels[std::min(level_count - 1, from + static_cast<int64_t>(unit(rng) * spread))];
  };
  paint(0.5, 0.5, 0.42, 0.34, unit(rng) * kPi, any_level(1));
  for (int e = 0; e < ellipses; ++e) {
    paint(0.3 + 0.4 * unit(rng), 0.3 + 0.4 * unit(rng), 0.04 + 0.12 * unit(rng),
          0.04 + 0.12 * unit(rng), unit(rng) * kPi, any_level(0));
  }
  return image;
}

Status Build(const Spec& spec, Problem* problem, std::vector<double>* start_image) {
  if (Status s = Validate(spec); !s.ok()) return s;
  const int64_t pixels = int64_t{spec.size} * spec.size;
  Problem p;
  p.cols = pixels;
  p.x_csr = Projector(spec.size, spec.angles, Detectors(spec));
  const auto reconstruct = [&](Method method) {  // from the rays alone
    const int iterations = spec.start_iterations > 0 ? spec.start_iterations
                           : method == Method::kSart ? 30
                                                     : 300;
    return Reconstruct(p.x_csr, pixels, spec.angles, spec.sinogram, method, iterations,
                       spec.levels.front(), spec.levels.back());
  };
  std::vector<double> sart, sirt;
  if (spec.start != Method::kSirt) sart = reconstruct(Method::kSart);
  if (spec.start != Method::kSart) sirt = reconstruct(Method::kSirt);
  Instance inst;
  inst.b = spec.sinogram;
  if (spec.least_squares()) AddSmoothness(spec, &p.x_csr, &inst);
  p.rows = static_cast<int64_t>(p.x_csr.row_offsets.size()) - 1;
  const bool sirt_starts =
      spec.start == Method::kSirt ||
      (spec.start == Method::kBest && ScoreRounded(p, inst, spec, sirt)
                                          .Better(ScoreRounded(p, inst, spec, sart),
                                                  spec.least_squares()));
  *start_image = sirt_starts ? std::move(sirt) : std::move(sart);
  inst.levels = PixelLevels(spec.levels, *start_image, spec.settled_within);
  inst.start_values = *start_image;
  p.instances.push_back(std::move(inst));
  *problem = std::move(p);
  return Status::Ok();
}

void ReweightSmoothness(const Spec& spec, const std::vector<double>& image, Problem* problem) {
  double gap = spec.levels.back() - spec.levels.front();
  for (size_t i = 1; i < spec.levels.size(); ++i) {
    gap = std::min(gap, spec.levels[i] - spec.levels[i - 1]);
  }
  const CsrMatrix& x = problem->x_csr;
  std::vector<double>& weights = problem->instances.at(0).weights;
  for (int64_t k = Rays(spec); k < problem->rows; ++k) {  // rows v_p - v_q
    const int64_t e = x.row_offsets[k];
    const double jump = std::fabs(image[x.columns[e]] - image[x.columns[e + 1]]);
    weights[k] = std::sqrt(spec.smoothness) / std::max(jump, gap);
  }
}

Status Solve(const Device& device, StreamHandle stream, const Spec& spec, Problem* problem,
             Options options, ProgressSink* sink, const CancelToken* cancel, Result* result) {
  options.least_squares = spec.least_squares();
  Status s = dmmv::Solve(device, stream, *problem, options, sink, cancel, result);
  const bool reweighted = spec.least_squares() && spec.smoothness > 0;
  for (int round = 0; s.ok() && reweighted && round < spec.reweight_rounds; ++round) {
    ReweightSmoothness(spec, result->instances[0].values, problem);
    Instance& inst = problem->instances[0];
    inst.start_values.clear();
    inst.start_levels = result->instances[0].level_indices;
    Result next;
    s = dmmv::Solve(device, stream, *problem, options, sink, cancel, &next);
    if (next.instances.empty()) break;  // stopped before it had an image
    InstanceResult& last = next.instances[0];
    const InstanceResult& before = result->instances[0];
    last.start_max_violation = before.start_max_violation;  // the first start's
    last.moves += before.moves;
    last.outer_iterations += before.outer_iterations;
    next.seconds += result->seconds;
    *result = std::move(next);
  }
  return s;
}

std::vector<double> RoundToLevels(const std::vector<double>& image,
                                  const std::vector<double>& levels) {
  const Levels grid{0, 1, 0, levels};
  std::vector<double> rounded(image.size());
  for (size_t j = 0; j < image.size(); ++j) rounded[j] = grid.Value(grid.Nearest(image[j]));
  return rounded;
}

double MaxRayResidual(const Problem& problem, int64_t rays, const std::vector<double>& image) {
  const CsrMatrix& a = problem.x_csr;
  const std::vector<double>& b = problem.instances.at(0).b;
  double worst = 0;
  for (int64_t k = 0; k < rays; ++k) {
    worst = std::max(worst, std::fabs(ProjectRow(a, k, image) - b[k]));
  }
  return worst;
}

}  // namespace solverd::dmmv::tomography
