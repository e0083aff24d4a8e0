// ot_bench: solves one entropic OT problem with solverd's kernels and
// prints its figures as JSON; bench/ot/run drives it side by side with POT.
//   ot_bench [--runs=R --budget=S] COST.f64 N M ETA TOL MAX_ITER THREADS POTENTIALS_OUT.f64
//            [METHOD [A.f64 B.f64]]
// METHOD is sinkhorn (default; over-relaxed, omega tuned), sinkhorn-classic
// (overrelaxation 1), sns or auto. COST.f64 holds N*M
// little-endian float64 values; A.f64 and B.f64 the marginals (default
// uniform).
// Solves up to R times (default 1) in this process while the solves take
// under S seconds together (default 15), and reports the fastest, as POT's
// rows are timed in their Python process: the first solve of a process
// also pays what a running server pays once (the solver's code faulted in
// page by page, its worker threads started), 2-3 ms of a 3 ms solve on
// random assignment. first_seconds is that first solve's time.
// Potentials (x then y) are written to POTENTIALS_OUT so the driver can
// check the plan independently.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "ot/ot.h"

// Fills *values (already sized) from the little-endian float64 file `path`.
static bool ReadDoubles(const char* path, std::vector<double>* values) {
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(values->data()), values->size() * 8);
  if (!in) std::fprintf(stderr, "cannot read %zu values from %s\n", values->size(), path);
  return static_cast<bool>(in);
}

int main(int argc, char** argv) {
  int runs = 1;
  double budget = 15;
  while (argc > 1 && std::strncmp(argv[1], "--", 2) == 0) {
    if (std::strncmp(argv[1], "--runs=", 7) == 0) {
      runs = std::atoi(argv[1] + 7);
    } else if (std::strncmp(argv[1], "--budget=", 9) == 0) {
      budget = std::atof(argv[1] + 9);
    } else {
      runs = 0;  // unknown flag: the usage below
    }
    ++argv;
    --argc;
  }
  if ((argc != 9 && argc != 10 && argc != 12) || runs < 1) {
    std::fprintf(stderr, "usage: ot_bench [--runs=R --budget=S] COST N M ETA TOL MAX_ITER "
                         "THREADS POTENTIALS_OUT [METHOD [A B]]\n");
    return 2;
  }
  const std::string method = argc >= 10 ? argv[9] : "sinkhorn";
  solverd::ot::Problem p;
  p.n = std::atol(argv[2]);
  p.m = std::atol(argv[3]);
  p.eta = std::atof(argv[4]);
  p.cost.resize(p.n * p.m);
  p.a.assign(p.n, 1.0 / p.n);
  p.b.assign(p.m, 1.0 / p.m);
  if (!ReadDoubles(argv[1], &p.cost) ||
      (argc == 12 && (!ReadDoubles(argv[10], &p.a) || !ReadDoubles(argv[11], &p.b)))) {
    return 1;
  }
  solverd::ot::Options o;
  o.tolerance = std::atof(argv[5]);
  o.max_iterations = std::atol(argv[6]);
  o.threads = std::atoi(argv[7]);
  o.method = method == "sns" ? solverd::ot::Method::kSns
           : method == "auto" ? solverd::ot::Method::kAuto : solverd::ot::Method::kSinkhorn;
  if (method == "sinkhorn-classic") o.overrelaxation = 1;  // no over-relaxation
  solverd::ot::Result r;
  double seconds = 0, first_seconds = 0, spent = 0;
  for (int run = 0; run < runs && (run == 0 || spent < budget); ++run) {
    solverd::ot::Result this_run;
    const auto start = std::chrono::steady_clock::now();
    solverd::Status s =
        solverd::ot::Solve(solverd::Device::Cpu(), nullptr, p, o, nullptr, nullptr, &this_run);
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
    spent += took;
    if (run == 0) first_seconds = took;
    if (run == 0 || took < seconds) {
      seconds = took;
      r = std::move(this_run);
    }
  }
  std::ofstream out(argv[8], std::ios::binary);
  out.write(reinterpret_cast<const char*>(r.x.data()), r.x.size() * 8);
  out.write(reinterpret_cast<const char*>(r.y.data()), r.y.size() * 8);
  std::printf("{\"seconds\": %.6f, \"first_seconds\": %.6f, \"iterations\": %ld, "
              "\"sinkhorn_iterations\": %ld, "
              "\"newton_iterations\": %ld, \"sinkhorn_seconds\": %.6f, \"newton_seconds\": %.6f, "
              "\"cg_seconds\": %.6f, \"marginal_error\": %.6e, \"transport_cost\": %.12g}\n",
              seconds, first_seconds, static_cast<long>(r.iterations),
              static_cast<long>(r.sinkhorn_iterations), static_cast<long>(r.newton_iterations),
              r.sinkhorn_seconds, r.newton_seconds, r.cg_seconds,
              r.marginal_error, r.transport_cost);
  return 0;
}
