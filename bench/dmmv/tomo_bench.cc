// tomo_bench: the tomography half of the dmmv benchmark. Draws phantoms
// (binary and four-level, 64 x 64 and 128 x 128), projects them at 64
// angles, adds uniform noise, and reconstructs with SART, SIRT, SART
// rounded to the levels, and solverd's DMMV search started from SART
// rounded. Prints one JSON record per line (the bench format of DESIGN.md);
// bench/dmmv/compare.py gathers them.
//   tomo_bench [--quick] [--cuda] [--seconds=S] [--settled=F]
// --settled sets tomography::Spec::settled_within (default the builder's).
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
constexpr double kNoise = 0.02;  // uniform noise, +- this fraction of the largest ray sum

std::string backend_name = "cpu";
double settled_within = tomo::kDefaultSettledWithin;

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
  const dmmv::Levels grid{0, 1, 0, levels};
  double abs_error = 0;
  int64_t wrong = 0;
  for (size_t j = 0; j < truth.size(); ++j) {
    abs_error += std::fabs(image[j] - truth[j]);
    wrong += grid.Value(grid.Nearest(image[j])) != truth[j];
  }
  const auto pixels = static_cast<double>(truth.size());
  Record(c, system, "mean_absolute_error", abs_error / pixels);
  Record(c, system, "wrong_pixel_fraction", static_cast<double>(wrong) / pixels);
  Record(c, system, "seconds", seconds);
}

bool RunCase(int size, bool four_levels, double budget, const solverd::Device& device) {
  const std::vector<double> levels =
      four_levels ? std::vector<double>{0, 1, 2, 3} : std::vector<double>{0, 1};
  const std::string name =
      "tomo_" + std::to_string(size) + (four_levels ? "_four" : "_binary");
  const std::vector<double> truth = tomo::Phantom(size, levels, 8, size + four_levels);
  tomo::Spec spec;
  spec.size = size;
  spec.angles = kAngles;
  spec.levels = levels;
  spec.settled_within = settled_within;
  const int detectors = tomo::DefaultDetectors(size);
  const dmmv::CsrMatrix a = tomo::Projector(size, kAngles, detectors);
  spec.sinogram = tomo::Project(a, truth);
  double peak = 0;
  for (double v : spec.sinogram) peak = std::max(peak, v);
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> noise(-kNoise * peak, kNoise * peak);
  for (double& v : spec.sinogram) v += noise(rng);
  const int64_t pixels = int64_t{size} * size;

  for (tomo::Method method : {tomo::Method::kSart, tomo::Method::kSirt}) {
    const auto start = Clock::now();
    const std::vector<double> image =
        tomo::Reconstruct(a, pixels, kAngles, spec.sinogram, method,
                          method == tomo::Method::kSart ? 30 : 300, levels.front(), levels.back());
    const double seconds = Seconds(start);
    const bool sart = method == tomo::Method::kSart;
    RecordErrors(name, sart ? "sart" : "sirt", image, truth, levels, seconds);
    if (!sart) continue;
    std::vector<double> rounded(image.size());
    const dmmv::Levels grid{0, 1, 0, levels};
    for (size_t j = 0; j < image.size(); ++j) rounded[j] = grid.Value(grid.Nearest(image[j]));
    RecordErrors(name, "sart-rounded", rounded, truth, levels, seconds);
  }

  const auto start = Clock::now();
  dmmv::Problem problem;
  std::vector<double> start_image;
  solverd::Status s = tomo::Build(spec, &problem, &start_image);
  dmmv::Options options;
  options.time_limit_seconds = budget;
  options.threads = 1;
  dmmv::Result result;
  if (s.ok()) s = dmmv::Solve(device, nullptr, problem, options, nullptr, nullptr, &result);
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), s.message().c_str());
    return false;
  }
  RecordErrors(name, "solverd", result.instances[0].values, truth, levels, Seconds(start));
  Record(name, "solverd", "max_violation", result.instances[0].max_violation);
  Record(name, "solverd", "start_max_violation", result.instances[0].start_max_violation);
  Record(name, "solverd", "noise_bound", kNoise * peak);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  double seconds = 0;
  solverd::Device device = solverd::Device::Cpu();
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[i], "--cuda") == 0) {
      device = solverd::Device::Cuda(0);
      backend_name = "cuda";
    } else if (std::strncmp(argv[i], "--seconds=", 10) == 0) {
      seconds = std::atof(argv[i] + 10);
    } else if (std::strncmp(argv[i], "--settled=", 10) == 0) {
      settled_within = std::atof(argv[i] + 10);
    } else {
      std::fprintf(stderr, "usage: tomo_bench [--quick] [--cuda] [--seconds=S] [--settled=F]\n");
      return 2;
    }
  }
  bool ok = true;
  for (int size : quick ? std::vector<int>{64} : std::vector<int>{64, 128}) {
    for (bool four : {false, true}) {
      const double budget = seconds > 0 ? seconds : size == 64 ? 20 : 60;
      ok = RunCase(size, four, budget, device) && ok;
    }
  }
  return ok ? 0 : 1;
}
