// TunerRegistry: the server's named sor tuners (CreateTuner / GetTuner /
// ListTuners / DeleteTuner), shared by every job that names them.
//
// A tuner outlives the jobs that use it; a job holds a shared_ptr, so
// deleting a tuner does not disturb a job that is running with it. With a
// state directory, every tuner is checkpointed to <dir>/tuners/<name>.tuner
// when created and after each job that used it (write-temp, fsync, rename),
// and reloaded by Load() at startup.
//
// With the shared store (PgTunerStore, for --store) the tuners live in the
// database instead: Find() hands each job its own copy, which records what
// it observes, and Persist() folds that into the stored tuner under the
// row's lock, so jobs on several replicas lose no feedback. Thread-safe.
#ifndef SOLVERD_SERVER_FAMILIES_SOR_TUNER_REGISTRY_H_
#define SOLVERD_SERVER_FAMILIES_SOR_TUNER_REGISTRY_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store/pg_tuner_store.h"
#include "solverd/v1/sor.pb.h"
#include "sor/tuner.h"

namespace solverd::server {

class TunerRegistry {
 public:
  struct Entry {
    std::shared_ptr<::solverd::sor::Tuner> tuner;
    v1::CreateTunerRequest config;  // as given, for GetTuner and idempotent creates
    absl::Time create_time;
  };

  // `state_dir` empty: tuners live in memory only. `shared`: they live
  // there (state_dir unused).
  explicit TunerRegistry(int max_tuners, std::string state_dir = "",
                         std::unique_ptr<PgTunerStore> shared = nullptr)
      : max_tuners_(max_tuners), state_dir_(std::move(state_dir)), shared_(std::move(shared)) {}

  // Reloads the checkpoints under the state directory. A file that cannot
  // be read is skipped and named in the returned warnings.
  std::vector<std::string> Load();
  // Keeps what a job learned with `used` (the entry Find() gave it):
  // checkpoints it to the state directory, or folds its feedback into the
  // shared store's tuner. Returns the tuner as it now stands.
  absl::StatusOr<v1::Tuner> Persist(const std::string& name, const Entry& used) const;

  // INVALID_ARGUMENT for a bad name or configuration; ALREADY_EXISTS when
  // the name is taken by a different configuration (the same one returns
  // the existing tuner); RESOURCE_EXHAUSTED beyond max_tuners.
  absl::StatusOr<v1::Tuner> Create(const v1::CreateTunerRequest& request);
  absl::StatusOr<Entry> Find(const std::string& name) const;  // NOT_FOUND
  absl::StatusOr<v1::Tuner> Get(const std::string& name) const;
  absl::StatusOr<v1::ListTunersResponse> List() const;
  absl::Status Delete(const std::string& name);

  static v1::Tuner ToProto(const std::string& name, const Entry& entry);

 private:
  // A validated, fresh tuner for `request` (not yet registered).
  static absl::StatusOr<Entry> MakeEntry(const v1::CreateTunerRequest& request);
  std::string PathFor(const std::string& name) const;
  absl::Status Write(const std::string& name, const Entry& entry) const;
  // The tuner a shared store's row describes.
  static absl::StatusOr<Entry> FromRow(const PgTunerStore::Row& row);
  absl::StatusOr<v1::Tuner> CreateShared(const v1::CreateTunerRequest& request, Entry fresh);

  const int max_tuners_;
  const std::string state_dir_;
  mutable absl::Mutex file_mu_;  // one checkpoint write at a time
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> tuners_ ABSL_GUARDED_BY(mu_);
  const std::unique_ptr<PgTunerStore> shared_;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_FAMILIES_SOR_TUNER_REGISTRY_H_
