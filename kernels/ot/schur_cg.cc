// OtBackend::SolveSchur on the host: conjugate gradient over the backend's
// sparse products, each step's scalars by schur_cg_math.h as on the device.
#include <cmath>

#include "ot/ot_backend.h"
#include "ot/schur_cg_math.h"

namespace solverd::ot::internal {
namespace {

double Dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// The loop's vectors and S v by two sparse products.
class HostSchurSolve {
 public:
  HostSchurSolve(OtBackend& backend, const SchurSystem& system)
      : backend_(backend), s_(system) {}

  Status Run(std::vector<double>* x, int64_t* iterations) {
    const size_t size = s_.rhs.size();
    std::vector<double> res = s_.rhs, z(size), dir, schur_dir;
    x->assign(size, 0.0);
    for (size_t k = 0; k < size; ++k) z[k] = s_.inv_diag[k] * res[k];
    dir = z;
    CgScalars cg;
    cg.rz = Dot(res, z);
    cg.rr = Dot(res, res);
    CgSetTarget(s_.relative_target, &cg);
    while (CgContinues(cg, s_.max_iterations)) {
      SOLVERD_RETURN_IF_ERROR(ApplySchur(dir, &schur_dir));
      cg.curvature = Dot(dir, schur_dir);
      if (!CgStepLength(&cg)) break;
      // The vector updates and the two dot products after them in one
      // loop: on random assignment (n = 500, 10 entries a row) the vector
      // loops cost about as much as the products.
      cg.rz_next = cg.rr_next = 0;
      for (size_t k = 0; k < size; ++k) {
        CgStepEntry(cg.alpha, dir[k], schur_dir[k], s_.inv_diag[k], &(*x)[k], &res[k], &z[k]);
        cg.rz_next += res[k] * z[k];
        cg.rr_next += res[k] * res[k];
      }
      CgFinishStep(&cg);
      for (size_t k = 0; k < size; ++k) dir[k] = z[k] + cg.beta * dir[k];
    }
    *iterations = cg.iterations;
    return Status::Ok();
  }

 private:
  // out = S v.
  Status ApplySchur(const std::vector<double>& v, std::vector<double>* out) {
    SOLVERD_RETURN_IF_ERROR(backend_.SparseMultiply(/*transpose=*/false, v, &rows_));
    for (size_t i = 0; i < rows_.size(); ++i) rows_[i] *= s_.inv_dr[i];
    SOLVERD_RETURN_IF_ERROR(backend_.SparseMultiply(/*transpose=*/true, rows_, &back_));
    out->resize(v.size());
    for (size_t j = 0; j < v.size(); ++j) {
      (*out)[j] = SchurEntry(s_.active[j], s_.dc[j], v[j], back_[j]);
    }
    return Status::Ok();
  }

  OtBackend& backend_;
  const SchurSystem& s_;
  std::vector<double> rows_, back_;  // Ps v scaled, then Ps^T of it
};

}  // namespace

Status OtBackend::SolveSchur(const SchurSystem& system, std::vector<double>* dy,
                             int64_t* iterations) {
  return HostSchurSolve(*this, system).Run(dy, iterations);
}

}  // namespace solverd::ot::internal
