// tomo_bench: the tomography half of the dmmv benchmark. Draws phantoms
// (binary and four-level, 64 x 64 and 128 x 128, three seeds each),
// projects them at 64 angles, adds uniform noise (2% and 5% of the largest
// ray sum), and reconstructs with SART, SIRT, both rounded to the levels,
// and solverd: the DMMV search under the stated noise bound (the
// regularized least-squares formulation of tomography.h) from the better
// rounded start, or with --minmax the min-max formulation from SART
// rounded. Prints one JSON record per line (the bench format of
// DESIGN.md); bench/dmmv/compare.py gathers them.
//   tomo_bench [--quick] [--cuda] [--minmax] [--seconds=S] [--settled=F] [--smoothness=B]
//              [--size=N]
// The case of seed 0 at 2% noise keeps its old name (tomo_64_binary); the
// others add _noise<percent>_seed<k>.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "dmmv/dmmv.h"
#include "dmmv/tomography.h"

namespace {

namespace dmmv = solverd::dmmv;
namespace tomo = solverd::dmmv::tomography;
using Clock = std::chrono::steady_clock;

constexpr int kAngles = 64;
constexpr int kStallRounds = 30;  // LNS rounds without a better objective that end a search

std::string backend_name = "cpu";
double settled_within = tomo::kDefaultSettledWithin;
double smoothness = tomo::kDefaultSmoothness;
bool minmax = false;

void Record(const std::string& c, const std::string& system, const char* metric, double value) {
  std::printf("{\"case\": \"%s\", \"system\": \"%s\", \"backend\": \"%s\", \"metric\": \"%s\", "
              "\"value\": %.6g}\n",
              c.c_str(), system.c_str(), backend_name.c_str(), metric, value);
  std::fflush(stdout);
}

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// Mean absolute error, and the fraction of pixels whose nearest level is wrong.
void RecordErrors(const std::string& c, const std::string& system,
                  const std::vector<double>& image, const std::vector<double>& truth,
                  const std::vector<double>& levels, double seconds) {
  const std::vector<double> rounded = tomo::RoundToLevels(image, levels);
  double abs_error = 0;
  int64_t wrong = 0;
  for (size_t j = 0; j < truth.size(); ++j) {
    abs_error += std::fabs(image[j] - truth[j]);
    wrong += rounded[j] != truth[j];
  }
  const auto pixels = static_cast<double>(truth.size());
  Record(c, system, "mean_absolute_error", abs_error / pixels);
  Record(c, system, "wrong_pixel_fraction", static_cast<double>(wrong) / pixels);
  Record(c, system, "seconds", seconds);
}

struct Case {
  int size;
  bool four_levels;
  double noise;  // +- this fraction of the largest ray sum
  int seed;

  std::string Name() const {
    std::string name = "tomo_" + std::to_string(size) + (four_levels ? "_four" : "_binary");
    if (noise == 0.02 && seed == 0) return name;
    return name + "_noise" + std::to_string(static_cast<int>(std::lround(noise * 100))) +
           "_seed" + std::to_string(seed);
  }
};

void RunBaselines(const Case& c, const dmmv::CsrMatrix& a, const std::vector<double>& sinogram,
                  const std::vector<double>& truth, const std::vector<double>& levels) {
  const int64_t pixels = int64_t{c.size} * c.size;
  for (tomo::Method method : {tomo::Method::kSart, tomo::Method::kSirt}) {
    const bool sart = method == tomo::Method::kSart;
    const auto start = Clock::now();
    const std::vector<double> image = tomo::Reconstruct(
        a, pixels, kAngles, sinogram, method, sart ? 30 : 300, levels.front(), levels.back());
    const double seconds = Seconds(start);
    RecordErrors(c.Name(), sart ? "sart" : "sirt", image, truth, levels, seconds);
    RecordErrors(c.Name(), sart ? "sart-rounded" : "sirt-rounded",
                 tomo::RoundToLevels(image, levels), truth, levels, seconds);
  }
}

bool RunCase(const Case& c, double budget, const solverd::Device& device) {
  const std::vector<double> levels =
      c.four_levels ? std::vector<double>{0, 1, 2, 3} : std::vector<double>{0, 1};
  const std::string name = c.Name();
  // Seed 0 is the phantom and noise the benchmark always had.
  const uint64_t phantom_seed = c.size + c.four_levels + 1000 * c.seed;
  const std::vector<double> truth = tomo::Phantom(c.size, levels, 8, phantom_seed);
  const dmmv::CsrMatrix a = tomo::Projector(c.size, kAngles, tomo::DefaultDetectors(c.size));
  tomo::Spec spec;
  spec.size = c.size;
  spec.angles = kAngles;
  spec.levels = levels;
  spec.settled_within = settled_within;
  spec.sinogram = tomo::Project(a, truth);
  double peak = 0;
  for (double v : spec.sinogram) peak = std::max(peak, v);
  const double bound = c.noise * peak;
  std::mt19937_64 rng(7 + c.seed);
  std::uniform_real_distribution<double> noise(-bound, bound);
  for (double& v : spec.sinogram) v += noise(rng);
  RunBaselines(c, a, spec.sinogram, truth, levels);

  const auto start = Clock::now();
  if (!minmax) {
    spec.noise_bound = bound;
    spec.smoothness = smoothness;
    spec.start = tomo::Method::kBest;
  }
  dmmv::Problem problem;
  std::vector<double> start_image;
  solverd::Status s = tomo::Build(spec, &problem, &start_image);
  dmmv::Options options;
  options.time_limit_seconds = budget;
  options.stall_rounds = minmax ? 0 : kStallRounds;
  options.threads = 1;
  dmmv::Result result;
  if (s.ok()) {
    s = tomo::Solve(device, nullptr, spec, &problem, options, nullptr, nullptr, &result);
  }
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), s.message().c_str());
    return false;
  }
  const std::vector<double>& image = result.instances[0].values;
  RecordErrors(name, "solverd", image, truth, levels, Seconds(start));
  const int64_t rays = tomo::Rays(spec);
  Record(name, "solverd", "max_violation", tomo::MaxRayResidual(problem, rays, image));
  Record(name, "solverd", "start_max_violation",
         tomo::MaxRayResidual(problem, rays, tomo::RoundToLevels(start_image, levels)));
  Record(name, "solverd", "noise_bound", bound);
  return true;
}

double FlagValue(const char* arg, const char* flag, bool* matched) {
  const size_t n = std::strlen(flag);
  *matched = std::strncmp(arg, flag, n) == 0;
  return *matched ? std::atof(arg + n) : 0;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  double seconds = 0;
  int only_size = 0;
  solverd::Device device = solverd::Device::Cpu();
  for (int i = 1; i < argc; ++i) {
    bool matched = false;
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[i], "--cuda") == 0) {
      device = solverd::Device::Cuda(0);
      backend_name = "cuda";
    } else if (std::strcmp(argv[i], "--minmax") == 0) {
      minmax = true;
    } else if (double v = FlagValue(argv[i], "--seconds=", &matched); matched) {
      seconds = v;
    } else if (double v = FlagValue(argv[i], "--settled=", &matched); matched) {
      settled_within = v;
    } else if (double v = FlagValue(argv[i], "--smoothness=", &matched); matched) {
      smoothness = v;
    } else if (double v = FlagValue(argv[i], "--size=", &matched); matched) {
      only_size = static_cast<int>(v);
    } else {
      std::fprintf(stderr, "usage: tomo_bench [--quick] [--cuda] [--minmax] [--seconds=S] "
                           "[--settled=F] [--smoothness=B] [--size=N]\n");
      return 2;
    }
  }
  bool ok = true;
  std::vector<int> sizes = quick ? std::vector<int>{64} : std::vector<int>{64, 128};
  if (only_size > 0) sizes = {only_size};
  for (int size : sizes) {
    for (bool four : {false, true}) {
      for (double noise : quick ? std::vector<double>{0.02} : std::vector<double>{0.02, 0.05}) {
        for (int seed = 0; seed < (quick ? 1 : 3); ++seed) {
          const double budget = seconds > 0 ? seconds : size == 64 ? 20 : 60;
          ok = RunCase({size, four, noise, seed}, budget, device) && ok;
        }
      }
    }
  }
  return ok ? 0 : 1;
}
