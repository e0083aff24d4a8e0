// PgConnection: one libpq connection to the shared store (PostgreSQL),
// named by a libpq URI (postgres://USER@HOST:PORT/DB?sslmode=...). The
// password never travels on a command line: it comes from a password file
// (its first line), or from libpq's own PGPASSWORD / PGPASSFILE.
//
// Statements take text parameters ($1, $2, ...; binary for bytea) and give
// rows of text. A connection that has broken is re-established by the next
// statement outside a transaction, which is then run once more; inside a
// transaction the error is returned, since the transaction is gone.
//
// Errors: UNAVAILABLE "store: ..." when the server cannot be reached (the
// caller may retry), ALREADY_EXISTS for a unique violation, ABORTED for a
// serialization failure or deadlock (retry the transaction), INTERNAL for
// anything else, each naming the statement's SQLSTATE.
//
// Thread-safe: a mutex serializes use of the one connection; Transaction()
// holds it for the whole transaction, whose statements go through the
// PgTransaction it hands its body. Use one PgConnection per thread that
// needs its own pace (a LISTEN loop, a heartbeat).
#ifndef SOLVERD_SERVER_STORE_PG_CONNECTION_H_
#define SOLVERD_SERVER_STORE_PG_CONNECTION_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

struct pg_conn;

namespace solverd::server {

// One statement parameter: text, bytes (bytea, sent binary), or NULL.
struct PgParam {
  std::optional<std::string> value;
  bool binary = false;

  PgParam() = default;  // NULL
  PgParam(std::string text) : value(std::move(text)) {}        // NOLINT: implicit
  PgParam(const char* text) : value(std::string(text)) {}      // NOLINT: implicit
  PgParam(int64_t number) : value(std::to_string(number)) {}   // NOLINT: implicit
  static PgParam Bytes(std::string bytes) {
    PgParam p(std::move(bytes));
    p.binary = true;
    return p;
  }
};

// The rows a statement returned, as text; NULL is nullopt.
class PgRows {
 public:
  int size() const { return static_cast<int>(rows_.size()); }
  bool empty() const { return rows_.empty(); }
  const std::optional<std::string>& at(int row, int col) const { return rows_[row][col]; }
  // The value at (row, col) as text, "" for NULL.
  std::string Text(int row, int col) const { return at(row, col).value_or(""); }
  int64_t Int(int row, int col) const;
  // A bytea column, decoded from its hex text form.
  std::string Bytes(int row, int col) const;
  // Rows changed by INSERT / UPDATE / DELETE.
  int64_t affected() const { return affected_; }

 private:
  friend class PgConnection;
  std::vector<std::vector<std::optional<std::string>>> rows_;
  int64_t affected_ = 0;
};

class PgConnection;

// One NOTIFY a LISTENing connection received.
struct PgNotification {
  std::string channel;
  std::string payload;
};

// The statements of one transaction; valid only inside the body it is
// handed to (PgConnection::Transaction).
class PgTransaction {
 public:
  absl::StatusOr<PgRows> Exec(std::string_view sql, const std::vector<PgParam>& params = {});

 private:
  friend class PgConnection;
  explicit PgTransaction(PgConnection* connection) : connection_(connection) {}
  PgConnection* const connection_;
};

class PgConnection {
 public:
  struct Options {
    std::string uri;            // postgres://USER@HOST:PORT/DB[?...]
    std::string password_file;  // first line is the password; empty: libpq's own sources
    int connect_timeout_seconds = 5;
    std::string application_name = "solverd";
  };

  // Connects; UNAVAILABLE naming the store when it cannot, INVALID_ARGUMENT
  // for a URI that is not postgres:// or postgresql://, or an unreadable
  // password file.
  static absl::StatusOr<std::unique_ptr<PgConnection>> Open(const Options& options);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Runs one statement (several, separated by ';', when `params` is empty).
  absl::StatusOr<PgRows> Exec(std::string_view sql, const std::vector<PgParam>& params = {});

  // Runs `body` between BEGIN and COMMIT (ROLLBACK when it or the commit
  // fails); its statements go through the PgTransaction it is given.
  // Other threads' statements wait until the transaction ends. A broken
  // connection is re-established before BEGIN, never inside.
  absl::Status Transaction(const std::function<absl::Status(PgTransaction&)>& body);

  // LISTENs on `channels` now and again after every reconnect.
  absl::Status Listen(const std::vector<std::string>& channels);
  // Waits up to `timeout` for notifications on the channels listened to;
  // empty when none came. A broken connection is re-established (and
  // listens again) here; UNAVAILABLE while the server cannot be reached,
  // after which a caller should assume it missed notifications.
  absl::StatusOr<std::vector<PgNotification>> WaitForNotifications(absl::Duration timeout);

  // Times the connection was re-established after it broke.
  int64_t reconnects() const;
  // Whether the last statement found the server (false from a failed
  // connect or a broken connection until a statement succeeds again).
  bool connected() const;
  // The URI with any password removed, for messages and logs.
  const std::string& name() const { return name_; }

 private:
  friend class PgTransaction;
  PgConnection(Options options, std::string password, std::string name);
  absl::Status ConnectLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether the connection is still up, reading what the server left on
  // an idle socket (a termination notice) without blocking.
  bool AliveLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves the notifications libpq has read into *out.
  void DrainNotificationsLocked(std::vector<PgNotification>* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<PgRows> ExecLocked(std::string_view sql, const std::vector<PgParam>& params)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<PgRows> RunLocked(std::string_view sql, const std::vector<PgParam>& params)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  const std::string password_;
  const std::string name_;
  // Held by Exec for one statement and by Transaction for all of its own.
  mutable absl::Mutex mu_;
  pg_conn* conn_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool in_transaction_ ABSL_GUARDED_BY(mu_) = false;
  // Written under mu_, read without it: a caller tallying reconnects (the
  // heartbeat) must not wait behind a statement, or a LISTEN connection's
  // wait for notifications.
  std::atomic<bool> connected_{false};
  std::vector<std::string> channels_ ABSL_GUARDED_BY(mu_);  // LISTENed to
  std::atomic<int64_t> reconnects_{0};
};

// The password of `path` (its first line, without the newline).
absl::StatusOr<std::string> ReadPasswordFile(const std::string& path);

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_STORE_PG_CONNECTION_H_
