// The sor family in the server: conversion (CSR, Matrix Market, data root)
// naming every bad field, tuners by name, and sequences run on a CPU lane.
#include "server/families/sor/family.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "server/blob_store.h"
#include "server/data_root.h"
#include "server/families/sor/matrix_market.h"
#include "server/families/sor/tuner_registry.h"

namespace solverd::server {
namespace {

// The 1-D Laplacian tridiag(-1, 2 + shift, -1) of size n as CSR.
void FillTridiagonal(int n, double shift, v1::CsrMatrix* a) {
  a->set_rows(n);
  a->add_row_ptr(0);
  for (int i = 0; i < n; ++i) {
    if (i > 0) { a->add_col_idx(i - 1); a->add_values(-1); }
    a->add_col_idx(i);
    a->add_values(2 + shift);
    if (i + 1 < n) { a->add_col_idx(i + 1); a->add_values(-1); }
    a->add_row_ptr(a->col_idx_size());
  }
}

v1::JobSpec Sequence(int systems, int n, const std::string& tuner) {
  v1::JobSpec spec;
  v1::SorSequence* seq = spec.mutable_sor();
  seq->set_tuner(tuner);
  for (int s = 0; s < systems; ++s) {
    v1::LinearSystem* sys = seq->add_systems();
    FillTridiagonal(n, 0.1 * (s % 3), sys->mutable_a());
    for (int i = 0; i < n; ++i) sys->mutable_b()->add_values(1 + 0.01 * i * (s + 1));
    sys->set_context(0.1 * (s % 3));
  }
  return spec;
}

class SorFamilyTest : public ::testing::Test {
 protected:
  absl::StatusOr<std::unique_ptr<PreparedJob>> Prepare(const v1::JobSpec& spec) {
    return family_.Prepare(spec, PrepareContext{blobs_, data_root_});
  }
  void ExpectError(const v1::JobSpec& spec, absl::StatusCode code, const std::string& needle) {
    absl::Status s = Prepare(spec).status();
    EXPECT_EQ(s.code(), code) << needle << ": " << s;
    EXPECT_NE(s.message().find(needle), std::string::npos) << s;
  }

  SorFamily family_{std::make_unique<TunerRegistry>(10)};
  TunerRegistry& tuners_ = family_.tuners();
  BlobStore blobs_{{1 << 20, absl::Hours(1)}};
  std::string data_root_;
};

TEST_F(SorFamilyTest, MalformedInputsNameTheField) {
  v1::JobSpec spec = Sequence(2, 5, "");
  spec.mutable_sor()->mutable_systems(1)->mutable_a()->set_col_idx(1, 7);
  ExpectError(spec, absl::StatusCode::kInvalidArgument, "sor.systems[1].a: row 0: column 7");

  spec = Sequence(1, 5, "");
  spec.mutable_sor()->mutable_systems(0)->mutable_a()->set_values(0, 0);
  ExpectError(spec, absl::StatusCode::kInvalidArgument, "zero diagonal");

  spec = Sequence(1, 5, "");
  spec.mutable_sor()->mutable_systems(0)->mutable_b()->add_values(1);
  ExpectError(spec, absl::StatusCode::kInvalidArgument, "sor.systems[0].b: has length 6");

  spec = Sequence(1, 5, "");
  spec.mutable_sor()->mutable_systems(0)->mutable_b()->set_values(2, std::nan(""));
  ExpectError(spec, absl::StatusCode::kInvalidArgument, "sor.systems[0].b: entry 2 is not finite");

  spec = Sequence(1, 5, "");
  spec.mutable_sor()->set_omega(2.5);
  ExpectError(spec, absl::StatusCode::kInvalidArgument, "sor.omega");

  spec = Sequence(1, 5, "");
  spec.mutable_sor()->set_method(v1::SOR_METHOD_SSOR_CG);
  spec.mutable_sor()->mutable_systems(0)->mutable_a()->set_values(1, -0.5);  // a_01 != a_10
  ExpectError(spec, absl::StatusCode::kInvalidArgument, "sor.systems[0].a: not symmetric");

  spec = Sequence(1, 5, "");
  spec.mutable_sor()->set_ordering(v1::SOR_ORDERING_NATURAL);
  spec.set_device(v1::DEVICE_CUDA);
  ExpectError(spec, absl::StatusCode::kInvalidArgument, "sor.ordering");

  ExpectError(Sequence(1, 5, "nobody"), absl::StatusCode::kNotFound, "sor.tuner: tuner nobody");
  v1::JobSpec empty;
  empty.mutable_sor();
  ExpectError(empty, absl::StatusCode::kInvalidArgument, "sor.systems: is empty");
}

TEST_F(SorFamilyTest, TunedSequenceSolvesAndTeachesTheTuner) {
  v1::CreateTunerRequest create;
  create.set_name("heat-1");
  create.set_algorithm(v1::TUNER_ALGORITHM_CHEBCB);
  create.set_context_max(0.3);
  ASSERT_TRUE(tuners_.Create(create).ok());
  auto job = Prepare(Sequence(12, 30, "heat-1"));
  ASSERT_TRUE(job.ok()) << job.status();
  JobOutcome out = (*job)->Run(Lane(), nullptr, nullptr);
  ASSERT_TRUE(out.status.ok()) << out.status;
  const v1::SorSequenceResult& r = out.result->sor();
  ASSERT_EQ(r.solves_size(), 12);
  int64_t total = 0;
  for (const v1::SorSolveResult& s : r.solves()) {
    EXPECT_TRUE(s.converged());
    EXPECT_LE(s.relative_residual(), 1e-8);
    EXPECT_EQ(s.x_size(), 30);
    EXPECT_GE(s.omega(), 1.0);
    total += s.iterations();
  }
  EXPECT_EQ(r.total_iterations(), total);
  EXPECT_EQ(r.tuner_state().systems(), 12);
  EXPECT_EQ(tuners_.Get("heat-1")->systems(), 12);
  EXPECT_EQ(out.iterations, total);
}

TEST_F(SorFamilyTest, WarmStartAndSeveralRightHandSides) {
  v1::JobSpec spec = Sequence(1, 40, "");
  v1::LinearSystem* sys = spec.mutable_sor()->mutable_systems(0);
  sys->mutable_b()->clear_values();
  sys->mutable_b()->add_shape(2);
  sys->mutable_b()->add_shape(40);
  for (int k = 0; k < 2; ++k) {
    for (int i = 0; i < 40; ++i) sys->mutable_b()->add_values(1.0 + 1e-6 * k * i);
  }
  spec.mutable_sor()->set_omega(1.8);
  auto cold = (*Prepare(spec))->Run(Lane(), nullptr, nullptr);
  spec.mutable_sor()->set_warm_start(true);
  spec.mutable_sor()->set_omit_solutions(true);
  auto warm = (*Prepare(spec))->Run(Lane(), nullptr, nullptr);
  ASSERT_TRUE(cold.status.ok() && warm.status.ok());
  ASSERT_EQ(warm.result->sor().solves_size(), 2);
  EXPECT_EQ(warm.result->sor().solves(1).rhs(), 1);
  EXPECT_EQ(warm.result->sor().solves(1).x_size(), 0);
  EXPECT_LT(warm.result->sor().solves(1).iterations(), cold.result->sor().solves(1).iterations());
}

// Without warm start and without a learning tuner, systems of one pattern
// share batched launches (64 at a time); each result is what a job of that
// system alone gives.
TEST_F(SorFamilyTest, BatchedSequenceMatchesSolvingEachAlone) {
  v1::JobSpec spec = Sequence(70, 25, "");
  spec.mutable_sor()->set_omega(1.5);
  auto batched = (*Prepare(spec))->Run(Lane(), nullptr, nullptr);
  ASSERT_TRUE(batched.status.ok()) << batched.status;
  ASSERT_EQ(batched.result->sor().solves_size(), 70);
  for (int s = 0; s < 70; s += 9) {
    v1::JobSpec alone = spec;
    alone.mutable_sor()->clear_systems();
    *alone.mutable_sor()->add_systems() = spec.sor().systems(s);
    auto one = (*Prepare(alone))->Run(Lane(), nullptr, nullptr);
    ASSERT_TRUE(one.status.ok()) << one.status;
    const v1::SorSolveResult& b = batched.result->sor().solves(s);
    EXPECT_EQ(b.system(), s);
    EXPECT_TRUE(b.converged());
    EXPECT_EQ(b.iterations(), one.result->sor().solves(0).iterations()) << s;
    EXPECT_EQ(b.x(7), one.result->sor().solves(0).x(7)) << s;
  }

  v1::CreateTunerRequest create;
  create.set_name("fixed");
  create.set_algorithm(v1::TUNER_ALGORITHM_FIXED);
  create.set_fixed_omega(1.5);
  ASSERT_TRUE(tuners_.Create(create).ok());
  auto fixed = (*Prepare(Sequence(70, 25, "fixed")))->Run(Lane(), nullptr, nullptr);
  ASSERT_TRUE(fixed.status.ok()) << fixed.status;
  EXPECT_EQ(fixed.result->sor().total_iterations(), batched.result->sor().total_iterations());
  EXPECT_EQ(tuners_.Get("fixed")->systems(), 70);
}

// A system that fails inside a batch is named; the solves before it stay.
TEST_F(SorFamilyTest, AFailureInsideABatchNamesItsSystem) {
  v1::JobSpec spec = Sequence(6, 20, "");
  spec.mutable_sor()->set_method(v1::SOR_METHOD_SSOR_CG);
  for (double& v : *spec.mutable_sor()->mutable_systems(4)->mutable_a()->mutable_values()) v = -v;
  auto out = (*Prepare(spec))->Run(Lane(), nullptr, nullptr);
  EXPECT_EQ(out.status.code(), absl::StatusCode::kInvalidArgument) << out.status;
  EXPECT_NE(out.status.message().find("sor.systems[4].a: not positive definite"),
            std::string::npos) << out.status;
  ASSERT_TRUE(out.result.has_value());
  EXPECT_EQ(out.result->sor().solves_size(), 5);
}

TEST_F(SorFamilyTest, TunerRegistryNamesAndConfigs) {
  v1::CreateTunerRequest r;
  r.set_name("bad name");
  EXPECT_EQ(tuners_.Create(r).status().code(), absl::StatusCode::kInvalidArgument);
  r.set_name("t");
  r.add_grid(1.0);
  r.add_grid(2.0);
  absl::Status s = tuners_.Create(r).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("grid"), std::string::npos) << s;
  r.set_grid(1, 1.5);
  ASSERT_TRUE(tuners_.Create(r).ok());
  EXPECT_TRUE(tuners_.Create(r).ok());  // same config: the same tuner
  r.set_seed(9);
  EXPECT_EQ(tuners_.Create(r).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(tuners_.List()->tuners_size(), 1);
  EXPECT_EQ(tuners_.Get("t")->arms_size(), 2);
  EXPECT_TRUE(tuners_.Delete("t").ok());
  EXPECT_EQ(tuners_.Delete("t").code(), absl::StatusCode::kNotFound);
}

TEST_F(SorFamilyTest, TunersSurviveARestartThroughTheStateDirectory) {
  namespace fs = std::filesystem;
  const std::string dir = (fs::temp_directory_path() / ("solverd_state_" + std::to_string(getpid()))).string();
  {
    SorFamily saving(std::make_unique<TunerRegistry>(10, dir));
    TunerRegistry& saved = saving.tuners();
    v1::CreateTunerRequest create;
    create.set_name("kept");
    create.set_algorithm(v1::TUNER_ALGORITHM_TSALLIS_INF_CB);
    ASSERT_TRUE(saved.Create(create).ok());
    auto job = saving.Prepare(Sequence(9, 20, "kept"), PrepareContext{blobs_, ""});
    ASSERT_TRUE(job.ok()) << job.status();
    ASSERT_TRUE((*job)->Run(Lane(), nullptr, nullptr).status.ok());
    create.set_name("gone");
    ASSERT_TRUE(saved.Create(create).ok());
    ASSERT_TRUE(saved.Delete("gone").ok());
  }
  std::ofstream(dir + "/tuners/junk.tuner") << "not a checkpoint";
  TunerRegistry loaded(10, dir);
  const std::vector<std::string> warnings = loaded.Load();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("junk.tuner"), std::string::npos);
  auto kept = loaded.Get("kept");
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->systems(), 9);
  EXPECT_EQ(kept->config().algorithm(), v1::TUNER_ALGORITHM_TSALLIS_INF_CB);
  EXPECT_EQ(loaded.Get("gone").status().code(), absl::StatusCode::kNotFound);
  fs::remove_all(dir);
}

TEST(MatrixMarket, ReadsGeneralSymmetricAndPattern) {
  auto general = ParseMatrixMarket(
      "%%MatrixMarket matrix coordinate real general\n% comment\n2 2 3\n1 1 4\n2 1 -1\n2 2 5.5\n", "a");
  ASSERT_TRUE(general.ok()) << general.status();
  EXPECT_EQ(general->n, 2);
  EXPECT_EQ(general->row_ptr, (std::vector<int64_t>{0, 1, 3}));
  EXPECT_EQ(general->values, (std::vector<double>{4, -1, 5.5}));
  auto symmetric = ParseMatrixMarket(
      "%%MatrixMarket matrix coordinate real symmetric\n2 2 3\n1 1 4\n2 1 -1\n2 2 4\n", "a");
  ASSERT_TRUE(symmetric.ok()) << symmetric.status();
  EXPECT_EQ(symmetric->nnz(), 4);
  EXPECT_TRUE(::solverd::sor::IsSymmetric(*symmetric));
  EXPECT_TRUE(ParseMatrixMarket("%%MatrixMarket matrix coordinate pattern general\n1 1 1\n1 1\n", "a").ok());
}

TEST(MatrixMarket, RejectsMalformedFilesNamingTheLine) {
  auto expect_bad = [](const std::string& text, const std::string& needle) {
    absl::Status s = ParseMatrixMarket(text, "sor.systems[0].a_path").status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << needle;
    EXPECT_NE(s.message().find(needle), std::string::npos) << s;
  };
  const std::string h = "%%MatrixMarket matrix coordinate real general\n";
  expect_bad("hello\n", "line 1: not a Matrix Market header");
  expect_bad("%%MatrixMarket matrix array real general\n", "coordinate");
  expect_bad(h + "2 3 1\n1 1 1\n", "not square");
  expect_bad(h + "2 2 2\n1 1 1\n", "expected 2 entries, found 1");
  expect_bad(h + "2 2 1\n3 1 1\n", "line 3: index (3, 1) out of range");
  expect_bad(h + "2 2 2\n1 1 1\n1 1 2\n", "duplicate entry (1, 1)");
  expect_bad(h + "2 2 2\n1 1 1\n2 2 nan\n", "not finite");
  expect_bad(h + "2 2 1\n1 1 1\n", "row 1: zero diagonal");
  expect_bad(h + "2 2 99999999999\n", "entry count out of range");
  // Twice this overflowed int64 before the bound (found by matrix_market_fuzz).
  expect_bad("%%MatrixMarket matrix coordinate real symmetric\n3 3 8888888888888888185\n",
             "entry count out of range");
  expect_bad("%%MatrixMarket matrix coordinate real symmetric\n2 2 2\n1 2 1\n2 2 1\n", "lower triangle");
}

TEST(DataRoot, ReadsInsideAndRefusesEverythingElse) {
  namespace fs = std::filesystem;
  const fs::path base = fs::temp_directory_path() / ("solverd_root_" + std::to_string(getpid()));
  fs::create_directories(base / "root" / "sub");
  std::ofstream(base / "root" / "sub" / "m.mtx") << "data";
  std::ofstream(base / "secret.txt") << "secret";
  fs::create_symlink(base / "secret.txt", base / "root" / "link.txt");
  const std::string root = (base / "root").string();
  auto ok = ReadUnderDataRoot(root, "sub/m.mtx", "f", 1 << 20);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok, "data");
  EXPECT_EQ(ReadUnderDataRoot(root, "../secret.txt", "f", 1 << 20).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadUnderDataRoot(root, "link.txt", "f", 1 << 20).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadUnderDataRoot(root, (base / "secret.txt").string(), "f", 1 << 20).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadUnderDataRoot(root, "missing.mtx", "f", 1 << 20).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadUnderDataRoot(root, "sub/m.mtx", "f", 2).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadUnderDataRoot("", "sub/m.mtx", "f", 1 << 20).status().code(),
            absl::StatusCode::kFailedPrecondition);
  fs::remove_all(base);
}

}  // namespace
}  // namespace solverd::server
