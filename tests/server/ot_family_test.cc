// OtFamily::Prepare: proto -> kernel conversion, defaults, and the field
// named by every INVALID_ARGUMENT.
#include "server/families/ot/family.h"

#include <cmath>
#include <cstring>

#include <gtest/gtest.h>

#include "server/blob_store.h"

namespace solverd::server {
namespace {

v1::JobSpec CostSpec(int n, int m) {
  v1::JobSpec spec;
  v1::OtProblem* p = spec.mutable_ot();
  p->mutable_cost()->add_shape(n);
  p->mutable_cost()->add_shape(m);
  for (int k = 0; k < n * m; ++k) p->mutable_cost()->add_values((k % 7) * 0.1);
  p->set_eta(10);
  return spec;
}

class OtFamilyTest : public ::testing::Test {
 protected:
  absl::Status Prepare(const v1::JobSpec& spec) { return family_.Prepare(spec, {blobs_}).status(); }
  void ExpectInvalid(const v1::JobSpec& spec, const std::string& field) {
    absl::Status s = Prepare(spec);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << field << ": " << s;
    EXPECT_EQ(s.message().substr(0, field.size() + 1), field + ":") << s.message();
  }
  OtFamily family_;
  BlobStore blobs_{BlobStore::Options{}};
};

TEST_F(OtFamilyTest, AcceptsAValidProblemAndRunsIt) {
  auto job = family_.Prepare(CostSpec(3, 4), {blobs_});
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_GT((*job)->MemoryBytes(), 3 * 4 * 8);
  Lane lane;
  JobOutcome out = (*job)->Run(lane, nullptr, nullptr);
  ASSERT_TRUE(out.status.ok()) << out.status;
  ASSERT_TRUE(out.result.has_value());
  EXPECT_EQ(out.result->ot().termination(), v1::OT_TERMINATION_CONVERGED);
  EXPECT_EQ(out.result->ot().potential_x_size(), 3);
  EXPECT_EQ(out.result->ot().device(), "cpu");
}

TEST_F(OtFamilyTest, EveryMethodSolvesAndCountsItsStages) {
  for (v1::OtMethod method : {v1::OT_METHOD_UNSPECIFIED, v1::OT_METHOD_SINKHORN,
                              v1::OT_METHOD_SNS, v1::OT_METHOD_AUTO}) {
    v1::JobSpec spec = CostSpec(6, 5);
    spec.mutable_ot()->set_method(method);
    spec.mutable_ot()->set_eta(200);
    spec.mutable_ot()->set_tolerance(1e-9);
    Lane lane;
    JobOutcome out = (*family_.Prepare(spec, {blobs_}))->Run(lane, nullptr, nullptr);
    ASSERT_TRUE(out.status.ok()) << v1::OtMethod_Name(method) << ": " << out.status;
    const v1::OtResult& r = out.result->ot();
    EXPECT_EQ(r.termination(), v1::OT_TERMINATION_CONVERGED) << v1::OtMethod_Name(method);
    EXPECT_EQ(r.iterations(), r.sinkhorn_iterations() + r.newton_iterations());
    if (method == v1::OT_METHOD_SINKHORN) EXPECT_EQ(r.newton_iterations(), 0);
    // SNS: 20 Sinkhorn steps first, and one after each damped Newton step.
    if (method == v1::OT_METHOD_SNS) EXPECT_GE(r.sinkhorn_iterations(), 20);
    if (method == v1::OT_METHOD_SNS) EXPECT_GT(r.newton_iterations(), 0);
    // CG is part of the Newton stage's time.
    EXPECT_LE(r.cg_seconds(), r.newton_seconds());
    if (method == v1::OT_METHOD_SINKHORN) EXPECT_EQ(r.cg_seconds(), 0);
    if (method == v1::OT_METHOD_SNS) EXPECT_GT(r.cg_seconds(), 0);
  }
}

TEST_F(OtFamilyTest, SparsePlanComesBackInCoordinateForm) {
  v1::JobSpec spec = CostSpec(4, 4);
  spec.mutable_ot()->set_sparse_plan_threshold(1e-3);
  Lane lane;
  JobOutcome out = (*family_.Prepare(spec, {blobs_}))->Run(lane, nullptr, nullptr);
  ASSERT_TRUE(out.status.ok()) << out.status;
  const v1::SparseMatrix& sparse = out.result->ot().sparse_plan();
  EXPECT_EQ(sparse.shape_size(), 2);
  EXPECT_GT(sparse.values_size(), 0);
  EXPECT_EQ(sparse.rows_size(), sparse.values_size());
  for (double v : sparse.values()) EXPECT_GE(v, 1e-3);
  spec.mutable_ot()->set_sparse_plan_threshold(-1);
  ExpectInvalid(spec, "ot.sparse_plan_threshold");
}

TEST_F(OtFamilyTest, BatchSolvesEachProblemAsAlone) {
  v1::JobSpec batch;
  std::vector<double> alone;
  for (int k = 0; k < 5; ++k) {
    v1::JobSpec one = CostSpec(4, 3);
    one.mutable_ot()->set_eta(5 + k);
    *batch.mutable_ot_batch()->add_problems() = one.ot();
    Lane lane;
    alone.push_back((*family_.Prepare(one, {blobs_}))->Run(lane, nullptr, nullptr)
                        .result->ot().transport_cost());
  }
  Lane lane;
  lane.cpu_threads = 3;
  auto prepared = family_.Prepare(batch, {blobs_});
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  JobOutcome out = (*prepared)->Run(lane, nullptr, nullptr);
  ASSERT_TRUE(out.status.ok()) << out.status;
  const v1::OtBatchResult& results = out.result->ot_batch();
  ASSERT_EQ(results.results_size(), 5);
  for (int k = 0; k < 5; ++k) {
    EXPECT_DOUBLE_EQ(results.results(k).transport_cost(), alone[k]) << k;
    EXPECT_EQ(results.results(k).termination(), v1::OT_TERMINATION_CONVERGED);
  }
}

TEST_F(OtFamilyTest, BatchNamesTheProblemAtFault) {
  v1::JobSpec batch;
  batch.mutable_ot_batch();
  ExpectInvalid(batch, "ot_batch.problems");  // empty
  for (int k = 0; k < 3; ++k) *batch.mutable_ot_batch()->add_problems() = CostSpec(4, 3).ot();
  v1::JobSpec bad = batch;
  bad.mutable_ot_batch()->mutable_problems(2)->mutable_cost()->set_values(0, -INFINITY);
  ExpectInvalid(bad, "ot_batch.problems[2].cost");
  bad = batch;
  *bad.mutable_ot_batch()->mutable_problems(1) = CostSpec(3, 3).ot();
  ExpectInvalid(bad, "ot_batch.problems[1]");
}

TEST_F(OtFamilyTest, RegIsTheInverseOfEta) {
  v1::JobSpec with_eta = CostSpec(3, 3), with_reg = CostSpec(3, 3);
  with_reg.mutable_ot()->set_reg(0.1);
  Lane lane;
  auto a = (*family_.Prepare(with_eta, {blobs_}))->Run(lane, nullptr, nullptr);
  auto b = (*family_.Prepare(with_reg, {blobs_}))->Run(lane, nullptr, nullptr);
  EXPECT_DOUBLE_EQ(a.result->ot().transport_cost(), b.result->ot().transport_cost());
}

TEST_F(OtFamilyTest, ReadsRawFloat32AndBlobs) {
  v1::JobSpec spec = CostSpec(2, 2);
  std::vector<float> values = {0.f, 1.f, 1.f, 0.f};
  std::string bytes(reinterpret_cast<const char*>(values.data()), 16);
  v1::Tensor* cost = spec.mutable_ot()->mutable_cost();
  cost->clear_values();
  cost->set_dtype(v1::DTYPE_FLOAT32);
  cost->set_raw(bytes);
  EXPECT_TRUE(Prepare(spec).ok());
  cost->clear_raw();
  ASSERT_TRUE(blobs_.Reserve("", 16).ok());
  cost->set_blob_id(blobs_.Put("", bytes, absl::Now())->id);
  EXPECT_TRUE(Prepare(spec).ok());
  cost->set_blob_id("blob-missing");
  EXPECT_EQ(Prepare(spec).code(), absl::StatusCode::kNotFound);
}

TEST_F(OtFamilyTest, NamesTheBadField) {
  v1::JobSpec s = CostSpec(3, 4);
  s.mutable_ot()->mutable_cost()->mutable_values()->RemoveLast();
  ExpectInvalid(s, "ot.cost");
  s = CostSpec(3, 4);
  s.mutable_ot()->mutable_cost()->set_values(5, NAN);
  ExpectInvalid(s, "ot.cost");
  s = CostSpec(3, 4);
  s.mutable_ot()->mutable_cost()->clear_shape();
  ExpectInvalid(s, "ot.cost");
  s = CostSpec(3, 4);
  for (double v : {0.5, -0.1, 0.6}) s.mutable_ot()->mutable_a()->add_values(v);
  ExpectInvalid(s, "ot.a");
  s = CostSpec(3, 4);
  s.mutable_ot()->mutable_b()->add_values(1.0);
  ExpectInvalid(s, "ot.b");
  s = CostSpec(3, 4);
  for (int i = 0; i < 3; ++i) s.mutable_ot()->mutable_a()->add_values(1.0 / 3);
  for (int j = 0; j < 4; ++j) s.mutable_ot()->mutable_b()->add_values(0.5);  // mass 2 vs 1
  ExpectInvalid(s, "ot.b");
  s = CostSpec(3, 4);
  s.mutable_ot()->clear_eta();
  ExpectInvalid(s, "ot.eta");
  s = CostSpec(3, 4);
  s.mutable_ot()->set_eta(-1);
  ExpectInvalid(s, "ot.eta");
  s = CostSpec(3, 4);
  s.mutable_ot()->set_reg(0);
  ExpectInvalid(s, "ot.reg");
  s = CostSpec(3, 4);
  s.mutable_ot()->set_tolerance(-1);
  ExpectInvalid(s, "ot.tolerance");
  s = CostSpec(3, 4);
  s.mutable_ot()->set_sparsity(2);
  ExpectInvalid(s, "ot.sparsity");
  s = CostSpec(3, 4);
  s.mutable_ot()->set_sns_sinkhorn_steps(-1);
  ExpectInvalid(s, "ot.sns_sinkhorn_steps");
  s = CostSpec(3, 4);
  s.mutable_ot()->set_overrelaxation(2.5);
  ExpectInvalid(s, "ot.overrelaxation");
  s = CostSpec(3, 4);
  s.mutable_ot()->set_method(static_cast<v1::OtMethod>(99));
  ExpectInvalid(s, "ot.method");
  s = CostSpec(3, 4);
  s.mutable_ot()->mutable_time_limit()->set_seconds(-1);
  ExpectInvalid(s, "ot.time_limit");
  s = CostSpec(3, 4);
  s.mutable_ot()->mutable_cost()->set_raw("x");  // two data sources
  ExpectInvalid(s, "ot.cost");
  v1::JobSpec points;
  points.mutable_ot()->set_eta(1);
  auto* x = points.mutable_ot()->mutable_points()->mutable_x();
  auto* y = points.mutable_ot()->mutable_points()->mutable_y();
  x->add_shape(1); x->add_shape(2); x->add_values(0); x->add_values(0);
  y->add_shape(1); y->add_shape(3); y->add_values(0); y->add_values(0); y->add_values(0);
  ExpectInvalid(points, "ot.points.y");
  points.mutable_ot()->clear_points();
  ExpectInvalid(points, "ot.cost");
}

}  // namespace
}  // namespace solverd::server
