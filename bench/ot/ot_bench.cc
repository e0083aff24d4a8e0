// ot_bench: solves one entropic OT problem with solverd's kernels and
// prints its figures as JSON; bench/ot/run drives it side by side with POT.
//   ot_bench COST.f64 N M ETA TOL MAX_ITER THREADS POTENTIALS_OUT.f64 [METHOD [A.f64 B.f64]]
// METHOD is sinkhorn (default), sns or auto. COST.f64 holds N*M
// little-endian float64 values; A.f64 and B.f64 the marginals (default
// uniform).
// Potentials (x then y) are written to POTENTIALS_OUT so the driver can
// check the plan independently.
#include <chrono>
#include <cstdio>
#include <cstdlib>
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
  if (argc != 9 && argc != 10 && argc != 12) {
    std::fprintf(stderr, "usage: ot_bench COST N M ETA TOL MAX_ITER THREADS POTENTIALS_OUT "
                         "[METHOD [A B]]\n");
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
  solverd::ot::Result r;
  const auto start = std::chrono::steady_clock::now();
  solverd::Status s = solverd::ot::Solve(solverd::Device::Cpu(), nullptr, p, o, nullptr, nullptr, &r);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  std::ofstream out(argv[8], std::ios::binary);
  out.write(reinterpret_cast<const char*>(r.x.data()), r.x.size() * 8);
  out.write(reinterpret_cast<const char*>(r.y.data()), r.y.size() * 8);
  std::printf("{\"seconds\": %.6f, \"iterations\": %ld, \"sinkhorn_iterations\": %ld, "
              "\"newton_iterations\": %ld, \"sinkhorn_seconds\": %.6f, \"newton_seconds\": %.6f, "
              "\"marginal_error\": %.6e, \"transport_cost\": %.12g}\n",
              seconds, static_cast<long>(r.iterations), static_cast<long>(r.sinkhorn_iterations),
              static_cast<long>(r.newton_iterations), r.sinkhorn_seconds, r.newton_seconds,
              r.marginal_error, r.transport_cost);
  return 0;
}
