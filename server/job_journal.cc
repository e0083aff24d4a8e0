#include "server/job_journal.h"

#include <sqlite3.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/state_files.h"

namespace solverd::server {
namespace {

constexpr size_t kMaxFailures = 64;  // batch failures remembered for waiters

constexpr const char* kSchema = R"sql(
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA journal_size_limit = 16777216;
CREATE TABLE IF NOT EXISTS jobs(
  id TEXT PRIMARY KEY,
  seq INTEGER NOT NULL,
  spec BLOB,                  -- NULL: in payloads/<id>.spec
  job BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS events(
  job_id TEXT NOT NULL,
  number INTEGER NOT NULL,
  event BLOB,                 -- NULL: in payloads/<job_id>.<number>.event
  PRIMARY KEY(job_id, number)) WITHOUT ROWID;
)sql";

// The status for a failed call on `db`: RESOURCE_EXHAUSTED when the disk
// is full, INTERNAL otherwise.
absl::Status SqliteError(sqlite3* db, const char* detail) {
  const std::string message = absl::StrCat("state_dir: job journal: ", detail);
  if (sqlite3_errcode(db) == SQLITE_FULL) return absl::ResourceExhaustedError(message);
  return absl::InternalError(message);
}

// A prepared statement, finalized when it goes out of scope.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) stmt_ = nullptr;
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& Text(int i, const std::string& s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& Int(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  // NULL when `inline_bytes` is false (the payload went to a file).
  Statement& Blob(int i, const std::string& s, bool inline_bytes = true) {
    if (!inline_bytes) {
      sqlite3_bind_null(stmt_, i);
    } else {
      sqlite3_bind_blob64(stmt_, i, s.data(), s.size(), SQLITE_TRANSIENT);
    }
    return *this;
  }
  // Runs a statement that returns no rows.
  absl::Status Run() {
    if (stmt_ == nullptr) return Error();
    const int rc = sqlite3_step(stmt_);
    return rc == SQLITE_DONE ? absl::OkStatus() : Error();
  }
  // Steps to the next row; false at the end (or on error: see ok()).
  bool Next() {
    if (stmt_ == nullptr) return false;
    last_ = sqlite3_step(stmt_);
    return last_ == SQLITE_ROW;
  }
  bool ok() const { return stmt_ != nullptr && (last_ == SQLITE_DONE || last_ == SQLITE_ROW); }
  int64_t ColumnInt(int i) { return sqlite3_column_int64(stmt_, i); }
  std::string ColumnText(int i) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
    return p == nullptr ? std::string() : std::string(p, sqlite3_column_bytes(stmt_, i));
  }
  bool ColumnIsNull(int i) { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }
  std::string ColumnBlob(int i) {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, i));
    return p == nullptr ? std::string() : std::string(p, sqlite3_column_bytes(stmt_, i));
  }
  absl::Status Error() const { return SqliteError(db_, sqlite3_errmsg(db_)); }

 private:
  sqlite3* const db_;
  sqlite3_stmt* stmt_ = nullptr;
  int last_ = SQLITE_DONE;
};

absl::Status Exec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) == SQLITE_OK) return absl::OkStatus();
  absl::Status status = SqliteError(db, error ? error : "error");
  sqlite3_free(error);
  return status;
}


}  // namespace

absl::StatusOr<std::unique_ptr<JobJournal>> JobJournal::Open(const std::string& state_dir,
                                                              const Options& options) {
  std::unique_ptr<JobJournal> journal(new JobJournal(state_dir, options));
  if (absl::Status s = journal->Init(); !s.ok()) return s;
  return journal;
}

absl::Status JobJournal::Init() {
  std::error_code ec;
  std::filesystem::create_directories(state_dir_ + "/payloads", ec);
  if (ec) return StateWriteError(state_dir_ + "/payloads", ec.value());
  const std::string path = state_dir_ + "/jobs.db";
  if (sqlite3_open_v2(path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return absl::InternalError(absl::StrCat("state_dir: cannot open ", path, ": ",
                                            db_ ? sqlite3_errmsg(db_) : "out of memory"));
  }
  sqlite3_busy_timeout(db_, 5000);
  if (absl::Status s = Exec(db_, kSchema); !s.ok()) return s;
  writer_ = std::thread([this] { WriterLoop(); });
  return absl::OkStatus();
}

JobJournal::~JobJournal() {
  if (writer_.joinable()) {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    writer_.join();
  }
  sqlite3_close(db_);
}

absl::StatusOr<std::vector<JobJournal::Record>> JobJournal::LoadAll() {
  absl::MutexLock lock(&db_mu_);
  std::vector<Record> records;
  std::map<std::string, size_t> index;
  Statement jobs(db_, "SELECT id, seq, spec, job FROM jobs ORDER BY seq");
  while (jobs.Next()) {
    Record r;
    const std::string id = jobs.ColumnText(0);
    r.seq = static_cast<uint64_t>(jobs.ColumnInt(1));
    std::string spec = jobs.ColumnBlob(2);
    if (jobs.ColumnIsNull(2)) {
      auto file = ReadWholeFile(absl::StrCat(state_dir_, "/payloads/", id, ".spec"));
      if (!file.ok()) return file.status();
      spec = *std::move(file);
    }
    if (!r.spec.ParseFromString(spec) || !r.job.ParseFromString(jobs.ColumnBlob(3))) {
      return absl::DataLossError(absl::StrCat("state_dir: job ", id, ": unreadable record"));
    }
    index[id] = records.size();
    records.push_back(std::move(r));
  }
  if (!jobs.ok()) return jobs.Error();
  Statement events(db_, "SELECT job_id, number, event FROM events ORDER BY job_id, number");
  while (events.Next()) {
    const std::string id = events.ColumnText(0);
    auto it = index.find(id);
    if (it == index.end()) continue;  // a job whose submission never committed
    std::string bytes = events.ColumnBlob(2);
    if (events.ColumnIsNull(2)) {
      auto file = ReadWholeFile(
          absl::StrCat(state_dir_, "/payloads/", id, ".", events.ColumnInt(1), ".event"));
      if (!file.ok()) return file.status();
      bytes = *std::move(file);
    }
    v1::JobEvent event;
    if (!event.ParseFromString(bytes)) {
      return absl::DataLossError(absl::StrCat("state_dir: job ", id, ": unreadable event"));
    }
    records[it->second].events.push_back(std::move(event));
  }
  if (!events.ok()) return events.Error();
  return records;
}

JobJournal::Write JobJournal::EventWrite(const v1::JobEvent& e) {
  return {Write::kEvent, e.job_id(), 0, "", e.SerializeAsString(), e.number()};
}

JobJournal::Ticket JobJournal::AddJob(uint64_t seq, std::string spec, const v1::Job& job,
                                      const std::vector<v1::JobEvent>& events) {
  Write add{Write::kAdd, job.id()};
  add.seq = seq;
  add.spec = std::move(spec);
  add.bytes = job.SerializeAsString();  // a new job has no result yet
  for (const v1::JobEvent& e : events) add.events.push_back(EventWrite(e));
  return Enqueue(std::move(add));
}

void JobJournal::PutEvent(const v1::JobEvent& event) { Enqueue(EventWrite(event)); }

void JobJournal::PutJob(const v1::Job& job, const std::vector<v1::JobEvent>& events) {
  v1::Job copy = job;
  copy.clear_result();
  Write put{Write::kJob, job.id(), 0, "", copy.SerializeAsString()};
  for (const v1::JobEvent& e : events) put.events.push_back(EventWrite(e));
  Enqueue(std::move(put));
}

void JobJournal::DeleteJob(const std::string& id) { Enqueue({Write::kDelete, id}); }

JobJournal::Ticket JobJournal::Enqueue(Write write) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(write));
  return ++enqueued_;
}

absl::Status JobJournal::WaitDurable(Ticket ticket) {
  absl::MutexLock lock(&mu_);
  auto done = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return committed_ >= ticket || closed_; };
  mu_.Await(absl::Condition(&done));
  if (committed_ < ticket) return absl::UnavailableError("state_dir: job journal closed");
  for (const Failure& f : failures_) {
    if (f.first <= ticket && ticket <= f.last) return f.status;
  }
  return absl::OkStatus();
}

absl::Status JobJournal::Flush() {
  uint64_t ticket;
  {
    absl::MutexLock lock(&mu_);
    ticket = enqueued_;
  }
  absl::Status waited = WaitDurable(ticket);
  absl::MutexLock lock(&mu_);
  absl::Status first = std::move(unreported_);
  unreported_ = absl::OkStatus();
  return first.ok() ? waited : first;
}

void JobJournal::WriterLoop() {
  for (;;) {
    std::vector<Write> batch;
    uint64_t first_ticket, last_ticket;
    bool crashed;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !queue_.empty() || stop_; };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) {  // stopping, nothing left
        closed_ = true;
        return;
      }
      while (!queue_.empty() && batch.size() < std::max<size_t>(1, options_.max_writes_per_batch)) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      first_ticket = committed_ + 1;
      last_ticket = committed_ + batch.size();
      crashed = options_.crash_after_batches >= 0 && batches_ >= options_.crash_after_batches;
    }
    absl::Status status = crashed ? absl::UnavailableError("state_dir: journal crashed (test)")
                                  : Apply(batch);
    absl::MutexLock lock(&mu_);
    committed_ = last_ticket;
    if (!crashed) ++batches_;
    if (!status.ok()) {
      failures_.push_back({first_ticket, last_ticket, status});
      if (failures_.size() > kMaxFailures) failures_.erase(failures_.begin());
      if (unreported_.ok()) unreported_ = status;
    }
  }
}

absl::Status JobJournal::Apply(const std::vector<Write>& batch) {
  absl::MutexLock lock(&db_mu_);
  std::vector<std::string> unlink_after;  // payloads of deleted jobs
  absl::Status status = Exec(db_, "BEGIN IMMEDIATE");
  for (size_t i = 0; status.ok() && i < batch.size(); ++i) {
    status = ApplyOne(batch[i], &unlink_after);
  }
  if (status.ok()) status = Exec(db_, "COMMIT");
  if (!status.ok()) {
    Exec(db_, "ROLLBACK").IgnoreError();
    std::fprintf(stderr, "solverd: %s\n", std::string(status.message()).c_str());
    return status;
  }
  for (const std::string& path : unlink_after) std::remove(path.c_str());
  return absl::OkStatus();
}

absl::Status JobJournal::ApplyOne(const Write& w, std::vector<std::string>* unlink_after) {
  const std::string payloads = state_dir_ + "/payloads/";
  switch (w.kind) {
    case Write::kAdd: {
      const bool inline_spec = static_cast<int64_t>(w.spec.size()) <= kInlineBytes;
      if (!inline_spec) {
        absl::Status s = WriteFileAtomically(payloads + w.id + ".spec", w.spec);
        if (!s.ok()) return s;
      }
      Statement add(db_, "INSERT OR REPLACE INTO jobs(id, seq, spec, job) VALUES(?, ?, ?, ?)");
      absl::Status s = add.Text(1, w.id)
                           .Int(2, static_cast<int64_t>(w.seq))
                           .Blob(3, w.spec, inline_spec)
                           .Blob(4, w.bytes)
                           .Run();
      for (size_t i = 0; s.ok() && i < w.events.size(); ++i) s = ApplyOne(w.events[i], unlink_after);
      return s;
    }
    case Write::kEvent: {
      const bool inline_event = static_cast<int64_t>(w.bytes.size()) <= kInlineBytes;
      if (!inline_event) {
        absl::Status s =
            WriteFileAtomically(absl::StrCat(payloads, w.id, ".", w.number, ".event"), w.bytes);
        if (!s.ok()) return s;
      }
      Statement put(db_, "INSERT OR REPLACE INTO events(job_id, number, event) VALUES(?, ?, ?)");
      return put.Text(1, w.id).Int(2, w.number).Blob(3, w.bytes, inline_event).Run();
    }
    case Write::kJob: {
      for (const Write& event : w.events) {
        if (absl::Status s = ApplyOne(event, unlink_after); !s.ok()) return s;
      }
      Statement put(db_, "UPDATE jobs SET job = ? WHERE id = ?");
      return put.Blob(1, w.bytes).Text(2, w.id).Run();
    }
    case Write::kDelete: {
      Statement spec(db_, "SELECT spec IS NULL FROM jobs WHERE id = ?");
      spec.Text(1, w.id);
      if (spec.Next() && spec.ColumnInt(0) != 0) unlink_after->push_back(payloads + w.id + ".spec");
      Statement files(db_, "SELECT number FROM events WHERE job_id = ? AND event IS NULL");
      files.Text(1, w.id);
      while (files.Next()) {
        unlink_after->push_back(absl::StrCat(payloads, w.id, ".", files.ColumnInt(0), ".event"));
      }
      Statement events(db_, "DELETE FROM events WHERE job_id = ?");
      if (absl::Status s = events.Text(1, w.id).Run(); !s.ok()) return s;
      Statement job(db_, "DELETE FROM jobs WHERE id = ?");
      return job.Text(1, w.id).Run();
    }
  }
  return absl::OkStatus();
}

}  // namespace solverd::server
