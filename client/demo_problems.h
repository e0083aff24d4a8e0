// Random problems for `solverctl demo <family>`: reproducible from a seed,
// sized by flags, meant to exercise a server end to end.
// Pure functions, safe from any thread.
#ifndef SOLVERD_CLIENT_DEMO_PROBLEMS_H_
#define SOLVERD_CLIENT_DEMO_PROBLEMS_H_

#include <cstdint>
#include <string>

#include "solverd/v1/ot.pb.h"
#include "solverd/v1/sor.pb.h"

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

// `systems` 2-D Poisson systems on a side x side grid, each shifted by
// s I with s spread over [0, 1) (the context), with random right-hand
// sides: what a tuner learns omega across.
v1::SorSequence ShiftedPoissonSequence(int side, int systems, uint64_t seed);

// A small random model as a safetensors file (three F32 linear layers,
// "layers.K.weight") and its calibration file ("layers.K.inputs", rows of
// inputs each layer reads).
struct QuantDemoFiles {
  std::string model;
  std::string calibration;
};
QuantDemoFiles RandomQuantModel(uint64_t seed);

}  // namespace solverd::client

#endif  // SOLVERD_CLIENT_DEMO_PROBLEMS_H_
