#include "bench/load/load_problems.h"

#include "client/demo_problems.h"

namespace solverd::load {
namespace {

v1::OtProblem TinyOt(uint64_t seed, int64_t n) {
  client::OtDemoOptions o;
  o.n = n;
  o.seed = seed;
  return client::RandomOtProblem(o);
}

// tridiag(-1, 2 + shift, -1) x = 1, n unknowns.
v1::SorSequence TinySor(int64_t n, double shift) {
  v1::SorSequence sequence;
  sequence.set_method(v1::SOR_METHOD_SSOR_CG);
  v1::LinearSystem* system = sequence.add_systems();
  v1::CsrMatrix* a = system->mutable_a();
  a->set_rows(n);
  a->add_row_ptr(0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = i - 1; j <= i + 1; ++j) {
      if (j < 0 || j >= n) continue;
      a->add_col_idx(static_cast<int32_t>(j));
      a->add_values(i == j ? 2 + shift : -1);
    }
    a->add_row_ptr(a->col_idx_size());
    system->mutable_b()->add_values(1);
  }
  return sequence;
}

}  // namespace

v1::JobSpec LoadJobSpec(int64_t number) {
  v1::JobSpec spec;
  const uint64_t seed = static_cast<uint64_t>(number) + 1;
  switch (number % kFamilies) {
    case 0:
      *spec.mutable_ot() = TinyOt(seed, 8);
      break;
    case 1:
      for (int k = 0; k < 4; ++k) *spec.mutable_ot_batch()->add_problems() = TinyOt(seed * 4 + k, 6);
      break;
    default:
      *spec.mutable_sor() = TinySor(16, 0.1 * static_cast<double>(number % 7));
  }
  return spec;
}

}  // namespace solverd::load
