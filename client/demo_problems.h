// Random problems for `solverctl demo <family>`: reproducible from a seed,
// sized by flags, meant to exercise a server end to end.
// Pure functions, safe from any thread.
#ifndef SOLVERD_CLIENT_DEMO_PROBLEMS_H_
#define SOLVERD_CLIENT_DEMO_PROBLEMS_H_

#include <cstdint>

#include "solverd/v1/ot.pb.h"

namespace solverd::client {

struct OtDemoOptions {
  int64_t n = 500;
  int64_t m = 0;  // 0: same as n
  int dim = 2;
  double eta = 20;
  uint64_t seed = 1;
};

// Two uniform point clouds in the unit cube with squared Euclidean cost and
// uniform marginals.
v1::OtProblem RandomOtProblem(const OtDemoOptions& options);

}  // namespace solverd::client

#endif  // SOLVERD_CLIENT_DEMO_PROBLEMS_H_
