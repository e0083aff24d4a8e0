// sor benchmark: omega tuners against fixed omegas, best-fixed-in-hindsight
// and instance-optimal on the two sequences of "Learning to Relax", side by
// side on the same instances in one run; plus sweep and SpMV throughput
// against the machine's copy bandwidth. Writes the records as JSON
// (bench/sor/report.py makes the markdown table).
//   sor_bench [--quick] [--threads=N] --json=PATH --machine=TEXT --command=TEXT
#include <chrono>
#include <cmath>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sor/sequence.h"
#include "sor/sor_backend.h"
#include "sor/sor.h"
#include "sor/tuner.h"
#include "sor_cases.h"
#include "throughput.h"

namespace {

namespace sor = solverd::sor;
using solverd::Device;

struct Record {
  std::string case_name, system, metric;
  double value;
};

struct Tally {
  int64_t iterations = 0;
  double seconds = 0;
  void Add(const sor::Result& r, const sor::Options& o) {
    iterations += r.converged ? r.iterations : std::max(r.iterations, o.max_iterations);
    seconds += r.seconds;
  }
};

struct Config {
  bool quick = false;
  int threads = 2;
  std::string json, machine, command;
  std::vector<std::pair<int, int>> heat;  // (nx, steps)
  bool heat_only = false;
  bool synthetic_only = false;
  sor::Ordering heat_ordering = sor::Ordering::kNatural;
};

std::vector<Record> records;

void Emit(const std::string& case_name, const std::string& system, const Tally& t) {
  records.push_back({case_name, system, "iterations", static_cast<double>(t.iterations)});
  records.push_back({case_name, system, "seconds", t.seconds});
  std::fprintf(stderr, "  %-16s %-18s %12lld iterations %9.3f s\n", case_name.c_str(),
               system.c_str(), static_cast<long long>(t.iterations), t.seconds);
}

std::unique_ptr<sor::Tuner> MakeTuner(sor::TunerAlgorithm algorithm, double lo, double hi) {
  sor::TunerConfig config;
  config.algorithm = algorithm;
  config.seed = 1;
  config.context_min = lo;
  config.context_max = hi;
  std::unique_ptr<sor::Tuner> tuner;
  if (!sor::Tuner::Create(config, &tuner).ok()) std::abort();
  return tuner;
}

const std::vector<double>& Grid() {
  static const std::vector<double> grid = MakeTuner(sor::TunerAlgorithm::kGridOracle, 0, 1)->grid();
  return grid;
}

void Check(const solverd::Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "solve failed: %s\n", s.ToString().c_str());
    std::exit(1);
  }
}

void RunSynthetic(const std::string& name, double beta_a, double beta_b, int count) {
  const auto instances = solverd::bench::SyntheticSequence(beta_a, beta_b, count, 42);
  const sor::CsrMatrix base = sor::Laplacian2d(10, 10);
  const sor::SweepOrder order = sor::NaturalOrder(base.n);  // exact SOR, as in the paper
  sor::Options options;
  options.ordering = sor::Ordering::kNatural;
  auto matrix = [&](double shift) {
    sor::CsrMatrix a = base;
    for (int32_t i = 0; i < a.n; ++i) {
      for (int64_t k = a.row_ptr[i]; k < a.row_ptr[i + 1]; ++k) if (a.col_idx[k] == i) a.values[k] += shift;
    }
    return a;
  };
  const std::vector<double>& grid = Grid();
  std::vector<Tally> fixed(grid.size());
  Tally optimal;
  for (const auto& inst : instances) {
    const sor::CsrMatrix a = matrix(inst.shift);
    for (size_t arm = 0; arm < grid.size(); ++arm) {
      sor::Options o = options;
      o.omega = grid[arm];
      sor::Result r;
      Check(sor::Solve(Device::Cpu(), nullptr, a, order, inst.b, {}, o, nullptr, nullptr, &r));
      fixed[arm].Add(r, o);
    }
    sor::Options o = options;
    o.omega = solverd::bench::InstanceOptimalOmega(inst.shift);
    sor::Result r;
    Check(sor::Solve(Device::Cpu(), nullptr, a, order, inst.b, {}, o, nullptr, nullptr, &r));
    optimal.Add(r, o);
  }
  size_t best = 0;
  for (size_t arm = 0; arm < grid.size(); ++arm) {
    if (fixed[arm].iterations < fixed[best].iterations) best = arm;
  }
  for (double omega : {1.0, 1.2, 1.4, 1.6, 1.8}) {
    for (size_t arm = 0; arm < grid.size(); ++arm) {
      if (std::abs(grid[arm] - omega) > 1e-9) continue;
      char label[32];
      std::snprintf(label, sizeof label, "fixed-%.1f", omega);
      Emit(name, omega == 1.0 ? "gauss-seidel" : label, fixed[arm]);
    }
  }
  Emit(name, "best-fixed", fixed[best]);
  records.push_back({name, "best-fixed", "omega", grid[best]});
  for (auto algorithm : {sor::TunerAlgorithm::kTsallisInf, sor::TunerAlgorithm::kTsallisInfCb,
                         sor::TunerAlgorithm::kChebCb}) {
    auto tuner = MakeTuner(algorithm, -0.15, 0.45);
    Tally tally;
    for (const auto& inst : instances) {
      sor::TunedSolve solve;
      Check(sor::SolveTuned(*tuner, Device::Cpu(), nullptr, matrix(inst.shift), order, inst.b, {},
                            inst.shift, options, nullptr, nullptr, &solve));
      tally.Add(solve.result, options);
    }
    Emit(name, sor::TunerAlgorithmName(algorithm), tally);
  }
  Emit(name, "instance-optimal", optimal);
}

// One heat-equation simulation; `solve` picks how each step is solved.
using StepSolver = std::function<solverd::Status(const sor::CsrMatrix&, const sor::SweepOrder&,
                                                 const std::vector<double>& b,
                                                 const std::vector<double>& x0, double kappa,
                                                 sor::Result*)>;

Tally Simulate(int nx, int steps, const StepSolver& solve, const sor::Options& options) {
  solverd::bench::HeatEquation heat(nx);
  // Natural ordering, as in the paper: SSOR with red-black ordering is a
  // much weaker preconditioner whose best omega is about 1, leaving
  // nothing to tune (measured: bench/sor/run --heat-only --ordering=multicolor).
  const sor::SweepOrder order = options.ordering == sor::Ordering::kNatural
                                    ? sor::NaturalOrder(heat.unknowns())
                                    : sor::MulticolorOrder(heat.Matrix(0));
  std::vector<double> u = heat.InitialState();
  Tally tally;
  for (int step = 1; step <= steps; ++step) {
    const sor::CsrMatrix& a = heat.Matrix(step);
    const std::vector<double> b = heat.RightHandSide(step, u);
    sor::Result r;
    Check(solve(a, order, b, u, heat.Kappa(step), &r));
    tally.Add(r, options);
    u = std::move(r.x);
  }
  return tally;
}

void RunHeat(int nx, int steps, bool with_best_fixed, int threads, sor::Ordering ordering) {
  const std::string name = "heat_nx" + std::to_string(nx);
  sor::Options options;
  options.ordering = ordering;
  options.method = sor::Method::kSsorCg;
  options.threads = threads;
  auto fixed = [&](sor::Method method, double omega) {
    sor::Options o = options;
    o.method = method;
    o.omega = omega;
    return Simulate(nx, steps, [&](const sor::CsrMatrix& a, const sor::SweepOrder& order,
                                   const std::vector<double>& b, const std::vector<double>& x0,
                                   double, sor::Result* r) {
      return sor::Solve(Device::Cpu(), nullptr, a, order, b, x0, o, nullptr, nullptr, r);
    }, o);
  };
  Emit(name, "cg", fixed(sor::Method::kCg, 1.0));
  Emit(name, "ssor-omega1", fixed(sor::Method::kSsorCg, 1.0));
  Emit(name, "ssor-omega1.5", fixed(sor::Method::kSsorCg, 1.5));
  if (with_best_fixed) {
    Tally best;
    double best_omega = 0;
    for (double omega : Grid()) {
      const Tally t = fixed(sor::Method::kSsorCg, omega);
      if (best_omega == 0 || t.iterations < best.iterations) { best = t; best_omega = omega; }
    }
    Emit(name, "best-fixed", best);
    records.push_back({name, "best-fixed", "omega", best_omega});
  }
  for (auto algorithm : {sor::TunerAlgorithm::kTsallisInf, sor::TunerAlgorithm::kChebCb}) {
    auto tuner = MakeTuner(algorithm, 0.5, 3.5);
    Emit(name, sor::TunerAlgorithmName(algorithm),
         Simulate(nx, steps, [&](const sor::CsrMatrix& a, const sor::SweepOrder& order,
                                 const std::vector<double>& b, const std::vector<double>& x0,
                                 double kappa, sor::Result* r) {
           sor::TunedSolve solve;
           solverd::Status s = sor::SolveTuned(*tuner, Device::Cpu(), nullptr, a, order, b, x0,
                                               kappa, options, nullptr, nullptr, &solve);
           *r = std::move(solve.result);
           return s;
         }, options));
  }
}

double SecondsOf(const std::function<void()>& f, int repeats) {
  f();  // warm
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < repeats; ++i) f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / repeats;
}

// Bytes a sweep or SpMV must move at least (matrix once, vectors once)
// over its time, next to a plain memcpy.
void RunThroughput(int nx, int threads) {
  const std::string name = "throughput_nx" + std::to_string(nx);
  solverd::bench::HeatEquation heat(nx);
  const sor::CsrMatrix& a = heat.Matrix(1);
  const sor::SweepOrder order = sor::MulticolorOrder(a);
  const double matrix_bytes = solverd::bench::CsrBytes(a);
  // The backend the solvers use, timed operation by operation.
  auto backend = sor::internal::MakeCpuBackend({&a}, order, threads);
  Check(backend->Upload(sor::internal::kB, 0, std::vector<double>(a.n, 1.0)));
  const double sweep_s = SecondsOf([&] {
    Check(backend->Sweep(sor::internal::kX, sor::internal::kB, {1.5}, /*forward=*/true));
  }, 20);
  const double spmv_s = SecondsOf([&] {
    Check(backend->Multiply(sor::internal::kX, sor::internal::kQ));
  }, 20);
  // Large enough that the copy streams from memory, not cache.
  std::vector<char> src(std::max<size_t>(matrix_bytes, size_t{256} << 20)), dst(src.size());
  const double copy_s = SecondsOf([&] { std::memcpy(dst.data(), src.data(), src.size()); }, 20);
  const double sweep_bytes = solverd::bench::SweepBytes(a), spmv_bytes = solverd::bench::SpmvBytes(a);
  records.push_back({name, "sweep", "bytes_per_second", sweep_bytes / sweep_s});
  records.push_back({name, "spmv", "bytes_per_second", spmv_bytes / spmv_s});
  records.push_back({name, "memcpy", "bytes_per_second", 2.0 * src.size() / copy_s});
  std::fprintf(stderr, "  %s sweep %.2f GB/s, spmv %.2f GB/s, memcpy %.2f GB/s\n", name.c_str(),
               sweep_bytes / sweep_s / 1e9, spmv_bytes / spmv_s / 1e9,
               2.0 * src.size() / copy_s / 1e9);
}

void WriteJson(const Config& c) {
  std::ofstream out(c.json);
  out << "{\"family\": \"sor\", \"machine\": \"" << c.machine << "\", \"command\": \"" << c.command
      << "\",\n \"records\": [\n";
  for (size_t i = 0; i < records.size(); ++i) {
    const Record& r = records[i];
    char value[64];
    std::snprintf(value, sizeof value, "%.9g", r.value);
    out << "  {\"case\": \"" << r.case_name << "\", \"system\": \"" << r.system
        << "\", \"backend\": \"cpu\", \"metric\": \"" << r.metric << "\", \"value\": " << value
        << "}" << (i + 1 < records.size() ? ",\n" : "\n");
  }
  out << " ]}\n";
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* flag) { return arg.substr(std::strlen(flag)); };
    if (arg == "--quick") c.quick = true;
    else if (arg.rfind("--json=", 0) == 0) c.json = value("--json=");
    else if (arg.rfind("--machine=", 0) == 0) c.machine = value("--machine=");
    else if (arg.rfind("--command=", 0) == 0) c.command = value("--command=");
    else if (arg.rfind("--threads=", 0) == 0) c.threads = std::stoi(value("--threads="));
    else if (arg.rfind("--heat=", 0) == 0) {  // NX:STEPS, repeatable; replaces the default cases
      const std::string v = value("--heat=");
      c.heat.emplace_back(std::stoi(v.substr(0, v.find(':'))), std::stoi(v.substr(v.find(':') + 1)));
    }
    else if (arg == "--heat-only") c.heat_only = true;
    else if (arg == "--synthetic-only") c.synthetic_only = true;
    else if (arg == "--ordering=multicolor") c.heat_ordering = sor::Ordering::kMulticolor;
    else { std::fprintf(stderr, "unknown argument %s\n", arg.c_str()); return 2; }
  }
  const int instances = c.quick ? 1000 : 5000;
  if (!c.heat_only) {
    RunSynthetic("synthetic_low", 2, 6, instances);
    RunSynthetic("synthetic_high", 0.5, 1.5, instances);
  }
  if (c.synthetic_only) {
    WriteJson(c);
    return 0;
  }
  std::vector<std::pair<int, int>> heat = c.heat;
  if (heat.empty()) {
    heat = c.quick ? std::vector<std::pair<int, int>>{{50, 300}}
                   : std::vector<std::pair<int, int>>{{50, 5000}, {100, 1000}, {200, 300}, {400, 150}};
  }
  for (auto [nx, steps] : heat) {
    RunHeat(nx, steps, /*with_best_fixed=*/nx <= 100, c.threads, c.heat_ordering);
  }
  // A grid large enough (~60 MB of CSR) that the kernels stream from memory.
  RunThroughput(c.quick ? 400 : 1000, c.threads);
  WriteJson(c);
  return 0;
}
