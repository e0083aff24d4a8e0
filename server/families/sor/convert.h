// Conversion of the sor API (SorSequence, LinearSystem) to kernels/sor
// types, validating every field up front: a job that passes runs to the
// end without input errors. Errors name the field, e.g.
// "sor.systems[3].a: row 7: zero diagonal".
// Stateless functions, safe from any thread.
#ifndef SOLVERD_SERVER_FAMILIES_SOR_CONVERT_H_
#define SOLVERD_SERVER_FAMILIES_SOR_CONVERT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/families/family.h"
#include "solverd/v1/sor.pb.h"
#include "sor/csr.h"
#include "sor/sor.h"

namespace solverd::server {

// One system of a sequence; its matrix is shared with the previous system
// when both have the same values (no copy, one sweep order).
struct SorSystem {
  std::shared_ptr<const ::solverd::sor::CsrMatrix> a;
  std::vector<std::vector<double>> rhs;  // one or more right-hand sides
  std::vector<double> x0;                // empty: zeros or warm start
  double context = 0;
};

struct SorWork {
  std::vector<SorSystem> systems;
  ::solverd::sor::Options options;
  bool warm_start = false;
  bool omit_solutions = false;
  bool raw_solutions = false;  // x as bytes (x_raw), not repeated values
};

// Systems in one job at most, and right-hand sides over all of them.
inline constexpr int kMaxSorSolvesPerJob = 100000;

absl::StatusOr<SorWork> ConvertSorSequence(const v1::SorSequence& in,
                                           const PrepareContext& context);

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_FAMILIES_SOR_CONVERT_H_
