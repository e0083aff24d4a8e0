// PgTunerStore: the sor tuners of every replica in the shared store
// (--store=postgres://...), one row each (tuners: name, configuration,
// checkpoint, version). A job learns on its own copy of a tuner and hands
// back what it learned with Update(), which holds the row's lock while it
// folds the job's feedback into the checkpoint stored now: jobs on several
// replicas at once lose no feedback. Opaque bytes here; TunerRegistry owns
// their meaning. Thread-safe (one connection, serialized).
#ifndef SOLVERD_SERVER_STORE_PG_TUNER_STORE_H_
#define SOLVERD_SERVER_STORE_PG_TUNER_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/store/pg_connection.h"

namespace solverd::server {

class PgTunerStore {
 public:
  struct Row {
    std::string name;
    std::string config;      // serialized v1::CreateTunerRequest
    std::string checkpoint;  // serialized v1::TunerCheckpoint
    int64_t version = 0;     // updates so far
    absl::Time create_time;
  };

  // Connects and brings the schema up to date (pg_schema.h).
  static absl::StatusOr<std::unique_ptr<PgTunerStore>> Open(
      const PgConnection::Options& connection);

  // Adds `row` (name, config, checkpoint) unless a tuner of that name
  // exists, which it returns instead (*created false); RESOURCE_EXHAUSTED
  // when the cluster holds max_tuners already.
  absl::StatusOr<Row> Create(const Row& row, int max_tuners, bool* created);
  absl::StatusOr<Row> Get(const std::string& name);  // NOT_FOUND
  absl::StatusOr<std::vector<Row>> List();            // by name
  absl::Status Delete(const std::string& name);       // NOT_FOUND
  // Replaces the checkpoint with next(row as stored now), under the row's
  // lock; returns the row as updated. NOT_FOUND when it was deleted.
  using Fold = std::function<absl::StatusOr<std::string>(const Row& now)>;
  absl::StatusOr<Row> Update(const std::string& name, const Fold& next);

 private:
  explicit PgTunerStore(std::unique_ptr<PgConnection> connection)
      : connection_(std::move(connection)) {}
  std::unique_ptr<PgConnection> connection_;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_STORE_PG_TUNER_STORE_H_
