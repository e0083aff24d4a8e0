// Family: how one problem family (ot, sor, dmmv, quant) plugs into the job
// machinery. A family turns a JobSpec into a PreparedJob (validating every
// field up front, so bad input is rejected at submit) and runs batches of
// prepared jobs on a lane. Families are stateless and thread-safe.
#ifndef SOLVERD_SERVER_FAMILY_H_
#define SOLVERD_SERVER_FAMILY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/cancel_token.h"
#include "common/device.h"
#include "common/progress.h"
#include "solverd/v1/jobs.pb.h"

namespace solverd::server {

class BlobStore;
class TunerRegistry;

// What Prepare() may consult besides the spec: the server's shared inputs.
struct PrepareContext {
  const BlobStore& blobs;
  const TunerRegistry* tuners = nullptr;  // sor tuners
  std::string data_root;                  // --data-root; empty: no server files
  // Where a job may store output files (quant), charged to `owner`.
  BlobStore* outputs = nullptr;
  std::string owner;
};

// Where a batch runs: one CPU worker, or one CUDA stream on one GPU.
struct Lane {
  int index = 0;
  ::solverd::Device device;
  ::solverd::StreamHandle stream = nullptr;
  int cpu_threads = 1;  // threads a CPU solve may use
  std::string name() const { return device.ToString() + "/lane" + std::to_string(index); }
};

// What a finished (or stopped) run leaves behind.
struct JobOutcome {
  absl::Status status;                  // OK, CANCELLED, DEADLINE_EXCEEDED, ...
  std::optional<v1::JobResult> result;  // also on CANCELLED: best so far
  int64_t iterations = 0;               // for solverd_solver_iterations_total
};

// A validated problem in kernel form, ready to run. Owned by its job;
// Run() is called at most once, from one lane thread.
class PreparedJob {
 public:
  virtual ~PreparedJob() = default;
  // Working memory on the device, for admission control.
  virtual int64_t MemoryBytes() const = 0;
  // The size of its largest problem in the family's unit (SizeLimit), for
  // the per-family limits checked at submit.
  virtual int64_t ProblemSize() const = 0;
  // Jobs with equal non-empty keys may be run together by RunBatch().
  virtual std::string BatchKey() const { return ""; }
  // True when the job cannot run on a CUDA lane (e.g. sequential sweeps).
  virtual bool RequiresCpu() const { return false; }
  virtual JobOutcome Run(const Lane& lane, ::solverd::ProgressSink* sink,
                         const ::solverd::CancelToken* cancel) = 0;
};

// One member of a batch handed to Family::RunBatch().
struct BatchMember {
  PreparedJob* job;
  ::solverd::ProgressSink* sink;
  const ::solverd::CancelToken* cancel;
  JobOutcome* outcome;  // written by RunBatch
};

class Family {
 public:
  virtual ~Family() = default;
  virtual absl::string_view name() const = 0;
  // Validates `spec` (whose problem is this family's) and converts it.
  // INVALID_ARGUMENT names the field, e.g. "ot.a: entry 3 is negative".
  virtual absl::StatusOr<std::unique_ptr<PreparedJob>> Prepare(
      const v1::JobSpec& spec, const PrepareContext& context) const = 0;
  // Runs a batch of jobs that share a BatchKey. The default runs them one
  // after another; families with batched kernels override it.
  virtual void RunBatch(const Lane& lane, std::vector<BatchMember>& batch) const;

 protected:
  // A RunBatch for small jobs: side by side, a thread each, on a CPU lane
  // with threads to spare (SolveSideBySide); in turn otherwise.
  void RunSideBySide(const Lane& lane, std::vector<BatchMember>& batch) const;
};

// Runs solve(single, k) for k in [0, count): side by side on a CPU lane's
// threads, each solve on one thread (`single`), or in turn on a CUDA lane.
// For batches of small jobs, which gain more from a thread each than from
// splitting one job's loops.
void SolveSideBySide(const Lane& lane, int64_t count,
                     const std::function<void(const Lane& single, int64_t k)>& solve);

// The family that handles spec.problem_case(), or nullptr.
const Family* FamilyFor(v1::JobSpec::ProblemCase problem);

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_FAMILY_H_
