#include "server/families/dmmv/family.h"

#include <utility>

#include "absl/flags/flag.h"
#include "dmmv/dmmv.h"
#include "server/families/dmmv/convert.h"
#include "server/status_util.h"

ABSL_FLAG(int64_t, max_dmmv_entries, solverd::server::DmmvFamily::Info().size_limit.default_max,
          "largest dmmv problem accepted, in entries of X (N * M dense, nonzeros sparse)");

namespace solverd::server {
namespace {

namespace dmmv = ::solverd::dmmv;

class PreparedDmmv final : public PreparedJob {
 public:
  explicit PreparedDmmv(DmmvWork work)
      : problem_(std::move(work.problem)), options_(work.options), built_(std::move(work.built)) {}

  int64_t MemoryBytes() const override { return dmmv::MemoryBytes(problem_); }
  // Entries of X stored: N * M dense, the nonzeros sparse.
  int64_t ProblemSize() const override {
    return problem_.sparse() ? static_cast<int64_t>(problem_.x_csr.values.size())
                             : problem_.rows * problem_.cols;
  }

  JobOutcome Run(const Lane& lane, ::solverd::ProgressSink* sink,
                 const ::solverd::CancelToken* cancel) override {
    dmmv::Options options = options_;
    options.threads = lane.cpu_threads;
    dmmv::Result result;
    const ::solverd::Status s = Solve(lane, options, sink, cancel, &result);
    JobOutcome outcome;
    outcome.status = FromKernel(s);
    if (!result.instances.empty()) {
      outcome.result.emplace();
      *outcome.result->mutable_dmmv() =
          DmmvResultToProto(problem_, result, built_, lane.device.ToString());
      for (const dmmv::InstanceResult& ir : result.instances) outcome.iterations += ir.moves;
    }
    return outcome;
  }

 private:
  ::solverd::Status Solve(const Lane& lane, const dmmv::Options& options,
                          ::solverd::ProgressSink* sink, const ::solverd::CancelToken* cancel,
                          dmmv::Result* result) const {
    if (!built_.reweighted.has_value()) {
      return dmmv::Solve(lane.device, lane.stream, problem_, options, sink, cancel, result);
    }
    dmmv::Problem reweighted = problem_;  // its neighbour rows' weights change
    return dmmv::tomography::Solve(lane.device, lane.stream, *built_.reweighted, &reweighted,
                                   options, sink, cancel, result);
  }

  const dmmv::Problem problem_;
  const dmmv::Options options_;
  const DmmvBuilderOutput built_;
};

}  // namespace

const FamilyInfo& DmmvFamily::Info() {
  static const FamilyInfo* const kInfo = new FamilyInfo{
      "dmmv", {v1::JobSpec::kDmmv}, {"max_dmmv_entries", "entries of X", int64_t{1} << 26}};
  return *kInfo;
}

absl::StatusOr<std::unique_ptr<Family>> DmmvFamily::Create(const FamilyServices&) {
  return std::make_unique<DmmvFamily>();
}

absl::StatusOr<std::unique_ptr<PreparedJob>> DmmvFamily::Prepare(
    const v1::JobSpec& spec, const PrepareContext& context) const {
  auto work = ConvertDmmvProblem(spec.dmmv(), context.blobs);
  if (!work.ok()) return work.status();
  return std::make_unique<PreparedDmmv>(*std::move(work));
}

}  // namespace solverd::server
