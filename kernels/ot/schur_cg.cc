// OtBackend::SolveSchur on the host: conjugate gradient over the backend's
// sparse products, each step's scalars by schur_cg_math.h as on the device;
// and the backend's composite products' defaults (SparseGramTimes,
// SparseSchurSetup).
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

  // Also Ps x into *plan_x, as the sum of each step's Ps d.
  Status Run(std::vector<double>* x, int64_t* iterations, std::vector<double>* plan_x) {
    const size_t size = s_.rhs.size();
    std::vector<double> res = s_.rhs, z, dir, schur_dir;
    x->assign(size, 0.0);
    plan_x->assign(s_.inv_dr.size(), 0.0);
    CgScalars cg;
    cg.rz = Precondition(res, &z);
    dir = z;
    cg.rr = Dot(res, res);
    CgSetTarget(s_.relative_target, &cg);
    while (CgContinues(cg, s_.max_iterations)) {
      SOLVERD_RETURN_IF_ERROR(ApplySchur(dir, &schur_dir));
      cg.curvature = Dot(dir, schur_dir);
      if (!CgStepLength(&cg)) break;
      // The vector update and r . r in one loop: on random assignment
      // (n = 500, 10 entries a row) the vector loops cost about as much
      // as the products.
      cg.rr_next = 0;
      for (size_t k = 0; k < size; ++k) {
        CgStepEntry(cg.alpha, dir[k], schur_dir[k], &(*x)[k], &res[k]);
        cg.rr_next += res[k] * res[k];
      }
      for (size_t i = 0; i < plan_x->size(); ++i) (*plan_x)[i] += cg.alpha * plan_dir_[i];
      cg.rz_next = Precondition(res, &z);
      CgFinishStep(&cg);
      for (size_t k = 0; k < size; ++k) dir[k] = z[k] + cg.beta * dir[k];
    }
    *iterations = cg.iterations;
    return Status::Ok();
  }

 private:
  // z = M^-1 res (PreconditionEntry()); returns res . z.
  double Precondition(const std::vector<double>& res, std::vector<double>* z) {
    const CoarseSpace& coarse = s_.coarse;
    coarse_res_.assign(coarse.size, 0.0);
    for (size_t j = 0; j < res.size() && coarse.size > 0; ++j) {
      if (coarse.aggregate[j] >= 0) coarse_res_[coarse.aggregate[j]] += res[j];
    }
    coarse_z_.resize(coarse.size);
    for (int t = 0; t < coarse.size; ++t) {
      coarse_z_[t] = CoarseEntry(coarse.inverse.data(), coarse_res_.data(), coarse.size, t);
    }
    z->resize(res.size());
    double rz = 0;
    for (size_t j = 0; j < res.size(); ++j) {
      const int aggregate = coarse.size > 0 ? coarse.aggregate[j] : -1;
      (*z)[j] = PreconditionEntry(s_.inv_diag[j], res[j], aggregate, coarse_z_.data());
      rz += res[j] * (*z)[j];
    }
    return rz;
  }

  // out = S v, and plan_dir_ = Ps v.
  Status ApplySchur(const std::vector<double>& v, std::vector<double>* out) {
    SOLVERD_RETURN_IF_ERROR(backend_.SparseGramTimes(s_.inv_dr, v, &back_, &plan_dir_));
    out->resize(v.size());
    for (size_t j = 0; j < v.size(); ++j) {
      (*out)[j] = SchurEntry(s_.active[j], s_.dc[j], v[j], back_[j]);
    }
    return Status::Ok();
  }

  OtBackend& backend_;
  const SchurSystem& s_;
  std::vector<double> back_;  // Ps^T diag(inv_dr) Ps v
  std::vector<double> plan_dir_;  // Ps v
  std::vector<double> coarse_res_, coarse_z_;  // R r, inverse R r
};

}  // namespace

Status OtBackend::SparseGramTimes(const std::vector<double>& w, const std::vector<double>& v,
                                  std::vector<double>* out, std::vector<double>* plan_v) {
  std::vector<double> rows;
  SOLVERD_RETURN_IF_ERROR(SparseMultiply(/*transpose=*/false, v, &rows));
  if (plan_v != nullptr) *plan_v = rows;
  for (size_t i = 0; i < rows.size(); ++i) rows[i] *= w[i];
  return SparseMultiply(/*transpose=*/true, rows, out);
}

Status OtBackend::SparseSchurSetup(const std::vector<double>& w,
                                   const std::vector<double>& square_weights,
                                   const std::vector<int32_t>& group, int size,
                                   std::vector<double>* back, std::vector<double>* squares,
                                   std::vector<double>* q) {
  SOLVERD_RETURN_IF_ERROR(SparseMultiply(/*transpose=*/true, w, back));
  SOLVERD_RETURN_IF_ERROR(SparseColumnSquares(square_weights, squares));
  return size > 0 ? SparseGroupRowSums(group, size, q) : Status::Ok();
}

Status OtBackend::SolveSchur(const SchurSystem& system, std::vector<double>* dy,
                             int64_t* iterations, std::vector<double>* plan_dy) {
  return HostSchurSolve(*this, system).Run(dy, iterations, plan_dy);
}

}  // namespace solverd::ot::internal
