#include "client/demo_problems.h"

#include <random>

namespace solverd::client {

v1::OtProblem RandomOtProblem(const OtDemoOptions& o) {
  std::mt19937_64 rng(o.seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const int64_t m = o.m > 0 ? o.m : o.n;
  v1::OtProblem p;
  for (auto [cloud, rows] : {std::pair{p.mutable_points()->mutable_x(), o.n},
                             std::pair{p.mutable_points()->mutable_y(), m}}) {
    cloud->add_shape(rows);
    cloud->add_shape(o.dim);
    for (int64_t k = 0; k < rows * o.dim; ++k) cloud->add_values(u(rng));
  }
  p.mutable_points()->set_p(2);
  p.set_eta(o.eta);
  return p;
}

}  // namespace solverd::client
