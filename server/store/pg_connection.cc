#include "server/store/pg_connection.h"

#include <libpq-fe.h>
#include <poll.h>

#include <cstdlib>
#include <fstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace solverd::server {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// postgres://user:secret@host/db -> postgres://user@host/db
std::string WithoutPassword(const std::string& uri) {
  const size_t scheme = uri.find("://");
  const size_t at = uri.find('@');
  if (scheme == std::string::npos || at == std::string::npos) return uri;
  const size_t colon = uri.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return uri;
  return uri.substr(0, colon) + uri.substr(at);
}

std::string ErrorText(const char* message) {
  return std::string(absl::StripAsciiWhitespace(message == nullptr ? "" : message));
}

// The status for a failed statement, by its SQLSTATE.
absl::Status StatementError(const std::string& store, PGresult* result, bool broken,
                            std::string_view sql) {
  const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  const std::string code = state == nullptr ? "" : state;
  const std::string text = absl::StrCat("store ", store, ": ",
                                        ErrorText(PQresultErrorMessage(result)),
                                        code.empty() ? "" : absl::StrCat(" (SQLSTATE ", code, ")"));
  if (broken || absl::StartsWith(code, "08") || code == "57P01" || code == "57P03") {
    return absl::UnavailableError(text);
  }
  if (code == "23505") return absl::AlreadyExistsError(text);
  if (code == "40001" || code == "40P01") return absl::AbortedError(text);
  return absl::InternalError(absl::StrCat(text, " in: ", std::string(sql.substr(0, 200))));
}

std::string ListenStatement(const std::string& channel) {
  return absl::StrCat("LISTEN \"", channel, "\"");
}

}  // namespace

int64_t PgRows::Int(int row, int col) const {
  const std::optional<std::string>& v = at(row, col);
  return v.has_value() ? std::strtoll(v->c_str(), nullptr, 10) : 0;
}

std::string PgRows::Bytes(int row, int col) const {
  const std::optional<std::string>& v = at(row, col);
  if (!v.has_value() || v->size() < 2 || (*v)[0] != '\\' || (*v)[1] != 'x') return "";
  std::string out;
  out.reserve((v->size() - 2) / 2);
  for (size_t i = 2; i + 1 < v->size(); i += 2) {
    out.push_back(static_cast<char>(HexDigit((*v)[i]) * 16 + HexDigit((*v)[i + 1])));
  }
  return out;
}

absl::StatusOr<std::string> ReadPasswordFile(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--store_password_file: cannot read a password from ", path));
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

absl::StatusOr<std::unique_ptr<PgConnection>> PgConnection::Open(const Options& options) {
  if (!absl::StartsWith(options.uri, "postgres://") &&
      !absl::StartsWith(options.uri, "postgresql://")) {
    return absl::InvalidArgumentError(
        "--store: must be a libpq URI postgres://USER@HOST:PORT/DB");
  }
  std::string password;
  if (!options.password_file.empty()) {
    auto read = ReadPasswordFile(options.password_file);
    if (!read.ok()) return read.status();
    password = *std::move(read);
  }
  std::unique_ptr<PgConnection> connection(
      new PgConnection(options, std::move(password), WithoutPassword(options.uri)));
  absl::MutexLock lock(&connection->mu_);
  if (absl::Status s = connection->ConnectLocked(); !s.ok()) return s;
  return connection;
}

PgConnection::PgConnection(Options options, std::string password, std::string name)
    : options_(std::move(options)), password_(std::move(password)), name_(std::move(name)) {}

PgConnection::~PgConnection() {
  absl::MutexLock lock(&mu_);
  if (conn_ != nullptr) PQfinish(conn_);
}

absl::Status PgConnection::ConnectLocked() {
  if (conn_ != nullptr) PQfinish(conn_);
  const bool again = conn_ != nullptr;
  const std::string timeout = std::to_string(options_.connect_timeout_seconds);
  // NOTICEs ("relation already exists, skipping") are not worth a log line.
  std::vector<const char*> keys = {"dbname", "connect_timeout", "application_name", "options"};
  std::vector<const char*> values = {options_.uri.c_str(), timeout.c_str(),
                                     options_.application_name.c_str(),
                                     "-c client_min_messages=warning"};
  if (!password_.empty()) {
    keys.push_back("password");
    values.push_back(password_.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  conn_ = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  connected_ = conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK;
  if (connected_) {
    reconnects_ += again;
    for (const std::string& channel : channels_) {
      if (auto listened = RunLocked(ListenStatement(channel), {}); !listened.ok()) {
        return listened.status();
      }
    }
    return absl::OkStatus();
  }
  return absl::UnavailableError(absl::StrCat(
      "store ", name_, ": cannot connect: ",
      conn_ == nullptr ? "out of memory" : ErrorText(PQerrorMessage(conn_))));
}

absl::StatusOr<PgRows> PgConnection::RunLocked(std::string_view sql,
                                               const std::vector<PgParam>& params) {
  const std::string statement(sql);
  PGresult* result;
  if (params.empty()) {
    result = PQexec(conn_, statement.c_str());
  } else {
    std::vector<const char*> values;
    std::vector<int> lengths, formats;
    for (const PgParam& p : params) {
      values.push_back(p.value.has_value() ? p.value->data() : nullptr);
      lengths.push_back(p.value.has_value() ? static_cast<int>(p.value->size()) : 0);
      formats.push_back(p.binary ? 1 : 0);
    }
    result = PQexecParams(conn_, statement.c_str(), static_cast<int>(params.size()), nullptr,
                          values.data(), lengths.data(), formats.data(), /*resultFormat=*/0);
  }
  const ExecStatusType status = result == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(result);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    const bool broken = PQstatus(conn_) != CONNECTION_OK;
    if (broken) connected_ = false;
    absl::Status error = result == nullptr
        ? absl::UnavailableError(absl::StrCat("store ", name_, ": ",
                                              ErrorText(PQerrorMessage(conn_))))
        : StatementError(name_, result, broken, sql);
    PQclear(result);
    return error;
  }
  PgRows rows;
  const int n = PQntuples(result), cols = PQnfields(result);
  rows.rows_.resize(n);
  for (int r = 0; r < n; ++r) {
    rows.rows_[r].resize(cols);
    for (int c = 0; c < cols; ++c) {
      if (!PQgetisnull(result, r, c)) {
        rows.rows_[r][c] = std::string(PQgetvalue(result, r, c), PQgetlength(result, r, c));
      }
    }
  }
  const char* affected = PQcmdTuples(result);
  rows.affected_ = affected != nullptr && *affected ? std::strtoll(affected, nullptr, 10) : 0;
  PQclear(result);
  connected_ = true;
  return rows;
}

absl::StatusOr<PgRows> PgConnection::ExecLocked(std::string_view sql,
                                                const std::vector<PgParam>& params) {
  // Reconnect only before sending: a statement whose connection broke while
  // it ran may have taken effect, so it is never sent twice.
  if (!in_transaction_ && !AliveLocked()) {
    if (absl::Status s = ConnectLocked(); !s.ok()) return s;
  }
  return RunLocked(sql, params);
}

bool PgConnection::AliveLocked() {
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) return false;
  // A server that restarted, or terminated this idle connection, left an
  // error message and then end-of-file on the socket. Reading them without
  // blocking finds the break before a statement is sent into it, so the
  // statement goes on a fresh connection instead of failing. Two reads
  // suffice (the message, then EOF); the bound keeps a chatty LISTEN
  // connection from holding us here.
  for (int reads = 0; reads < 4; ++reads) {
    pollfd fd{PQsocket(conn_), POLLIN, 0};
    if (poll(&fd, 1, 0) <= 0) break;
    if (PQconsumeInput(conn_) == 0) break;
  }
  return PQstatus(conn_) == CONNECTION_OK;
}

absl::StatusOr<PgRows> PgConnection::Exec(std::string_view sql,
                                          const std::vector<PgParam>& params) {
  absl::MutexLock lock(&mu_);
  return ExecLocked(sql, params);
}

// The transaction's owner holds mu_ for the whole body (Transaction), which
// the analysis cannot follow through the body's callback.
absl::StatusOr<PgRows> PgTransaction::Exec(std::string_view sql,
                                           const std::vector<PgParam>& params)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  return connection_->ExecLocked(sql, params);
}

absl::Status PgConnection::Transaction(
    const std::function<absl::Status(PgTransaction&)>& body) {
  absl::MutexLock lock(&mu_);
  if (auto begun = ExecLocked("BEGIN", {}); !begun.ok()) return begun.status();
  in_transaction_ = true;
  PgTransaction transaction(this);
  absl::Status status = body(transaction);
  if (status.ok()) status = RunLocked("COMMIT", {}).status();
  if (!status.ok() && PQstatus(conn_) == CONNECTION_OK) RunLocked("ROLLBACK", {}).IgnoreError();
  in_transaction_ = false;
  return status;
}

absl::Status PgConnection::Listen(const std::vector<std::string>& channels) {
  absl::MutexLock lock(&mu_);
  for (const std::string& channel : channels) {
    if (auto listened = ExecLocked(ListenStatement(channel), {}); !listened.ok()) {
      return listened.status();
    }
    channels_.push_back(channel);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<PgNotification>> PgConnection::WaitForNotifications(
    absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
    if (absl::Status s = ConnectLocked(); !s.ok()) return s;
  }
  std::vector<PgNotification> out;
  DrainNotificationsLocked(&out);
  if (!out.empty()) return out;
  pollfd fd{PQsocket(conn_), POLLIN, 0};
  const int ready = poll(&fd, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  if (ready > 0 && PQconsumeInput(conn_) == 0) {
    connected_ = false;
    return absl::UnavailableError(absl::StrCat("store ", name_, ": ",
                                               ErrorText(PQerrorMessage(conn_))));
  }
  DrainNotificationsLocked(&out);
  return out;
}

void PgConnection::DrainNotificationsLocked(std::vector<PgNotification>* out) {
  while (PGnotify* n = PQnotifies(conn_)) {
    out->push_back({n->relname, n->extra == nullptr ? "" : n->extra});
    PQfreemem(n);
  }
}

int64_t PgConnection::reconnects() const { return reconnects_.load(std::memory_order_relaxed); }

bool PgConnection::connected() const { return connected_.load(std::memory_order_relaxed); }

}  // namespace solverd::server
