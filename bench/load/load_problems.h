// The small jobs of the load test, one per family, chosen by job number:
// a tiny ot problem, an ot batch of four, and a shifted 1D Poisson sor
// system. Each takes the solver well under a millisecond, so the service
// itself is what is measured.
#ifndef SOLVERD_BENCH_LOAD_LOAD_PROBLEMS_H_
#define SOLVERD_BENCH_LOAD_LOAD_PROBLEMS_H_

#include <cstdint>

#include "solverd/v1/jobs.pb.h"

namespace solverd::load {

inline constexpr int kFamilies = 3;

// The spec of job `number` (family number % kFamilies), seeded by it.
v1::JobSpec LoadJobSpec(int64_t number);

}  // namespace solverd::load

#endif  // SOLVERD_BENCH_LOAD_LOAD_PROBLEMS_H_
