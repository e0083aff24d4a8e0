// Family: how one problem family (ot, sor, dmmv, quant) plugs into the job
// machinery. A family turns a JobSpec into a PreparedJob (validating every
// field up front, so bad input is rejected at submit) and runs batches of
// prepared jobs on a lane. It describes itself with a FamilyInfo (name,
// JobSpec cases, size limit) and is made once per server by the registry
// (server/families/registry.h), owning whatever services are its alone
// (sor's tuners, quant's output store). Families are thread-safe: Prepare()
// and RunBatch() run concurrently on many threads.
#ifndef SOLVERD_SERVER_FAMILIES_FAMILY_H_
#define SOLVERD_SERVER_FAMILIES_FAMILY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/cancel_token.h"
#include "common/progress.h"
#include "server/lane.h"
#include "solverd/v1/jobs.pb.h"

namespace solverd::server {

class BlobStore;

// What Prepare() may consult besides the spec: what every family reads.
struct PrepareContext {
  const BlobStore& blobs;  // uploaded inputs named by blob id
  std::string data_root;   // --data-root; empty: no server files
  std::string owner;       // the submitting token's name ("" without tokens)
};

// The largest problem a family accepts, in the family's own unit, and the
// server flag that sets it (defined in the family's .cc, read in flags.cc).
struct SizeLimit {
  absl::string_view flag;  // "max_ot_entries"
  absl::string_view unit;  // "cost entries", as in "a problem of 9 cost entries"
  int64_t default_max = 0;
};

// What the registry and the job manager know of a family without asking it
// anything else.
struct FamilyInfo {
  absl::string_view name;  // "ot": Job.family, ListJobs' filter, metric labels
  std::vector<v1::JobSpec::ProblemCase> problems;  // the JobSpec cases it takes
  SizeLimit size_limit;
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
  // `info` must outlive the family (each family's static Info()).
  explicit Family(const FamilyInfo& info) : info_(info) {}
  virtual ~Family() = default;
  Family(const Family&) = delete;
  Family& operator=(const Family&) = delete;

  const FamilyInfo& info() const { return info_; }
  absl::string_view name() const { return info_.name; }
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

 private:
  const FamilyInfo& info_;
};

// Runs solve(single, k) for k in [0, count): side by side on a CPU lane's
// threads, each solve on one thread (`single`), or in turn on a CUDA lane.
// For batches of small jobs, which gain more from a thread each than from
// splitting one job's loops.
void SolveSideBySide(const Lane& lane, int64_t count,
                     const std::function<void(const Lane& single, int64_t k)>& solve);

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_FAMILIES_FAMILY_H_
