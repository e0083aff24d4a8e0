#include "server/store/pg_job_store.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/job.h"
#include "server/store/pg_schema.h"
#include "server/store/pg_sql.h"

namespace solverd::server {
namespace {

constexpr int kEventPage = 1000;

// The view, its event count and, for a finished job, the event before its
// last (where Job::Finish puts the result, when there is one).
constexpr const char* kGet = R"sql(
SELECT j.job, (SELECT coalesce(max(number) + 1, 0) FROM events e WHERE e.job_id = j.id),
  CASE WHEN j.state >= 3 THEN (SELECT event FROM events e WHERE e.job_id = j.id
                               ORDER BY number DESC LIMIT 1 OFFSET 1) END
FROM jobs j WHERE j.id = $1)sql";

bool IsTerminalEvent(const v1::JobEvent& e) {
  return e.has_state() && IsTerminal(e.state().state());
}

}  // namespace

absl::StatusOr<std::unique_ptr<PgJobStore>> PgJobStore::Open(Options options) {
  std::unique_ptr<PgJobStore> store(new PgJobStore(std::move(options)));
  const Options& o = store->options_;
  for (int i = 0; i < std::max(1, o.query_connections); ++i) {
    auto connection = PgConnection::Open(o.connection);
    if (!connection.ok()) return connection.status();
    store->queries_.push_back(*std::move(connection));
  }
  if (auto migrated = MigratePgSchema(*store->queries_.front()); !migrated.ok()) {
    return migrated.status();
  }
  auto writer = PgConnection::Open(o.connection);
  if (!writer.ok()) return writer.status();
  store->log_ = std::make_unique<PgJobLog>(*std::move(writer), o.replica, o.observe,
                                         o.on_durable);
  auto listener = PgConnection::Open(o.connection);
  if (!listener.ok()) return listener.status();
  store->listener_ = *std::move(listener);
  if (absl::Status s = store->listener_->Listen(
          {"solverd_events", "solverd_queue", "solverd_cancel"});
      !s.ok()) {
    return s;
  }
  PgJobStore* raw = store.get();
  store->listen_thread_ = std::thread([raw] { raw->ListenLoop(); });
  return store;
}

PgJobStore::~PgJobStore() {
  stop_ = true;
  if (listen_thread_.joinable()) listen_thread_.join();
  log_.reset();  // applies what is queued
}

int64_t PgJobStore::reconnects() const {
  int64_t n = log_->reconnects() + listener_->reconnects();
  for (const auto& q : queries_) n += q->reconnects();
  return n;
}

PgConnection& PgJobStore::Query() {
  return *queries_[next_query_.fetch_add(1) % queries_.size()];
}

absl::StatusOr<v1::Job> PgJobStore::Get(const std::string& id) {
  Timer timer(this, "get");
  auto rows = Query().Exec(kGet, {id});
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  v1::Job job;
  if (!job.ParseFromString(rows->Bytes(0, 0))) {
    return absl::DataLossError(absl::StrCat("store: job ", id, " cannot be parsed"));
  }
  job.set_event_count(rows->Int(0, 1));
  v1::JobEvent result;
  if (rows->at(0, 2).has_value() && result.ParseFromString(rows->Bytes(0, 2)) &&
      result.has_result()) {
    *job.mutable_result() = result.result();
  }
  return job;
}

absl::StatusOr<std::vector<v1::Job>> PgJobStore::List(const JobStore::Filter& filter,
                                                      std::vector<uint64_t>* seqs, bool* more) {
  Timer timer(this, "list");
  auto rows = Query().Exec(
      "SELECT j.seq, j.job, (SELECT coalesce(max(number) + 1, 0) FROM events e "
      "WHERE e.job_id = j.id) FROM jobs j WHERE j.seq > $1::bigint "
      "AND ($2::smallint = 0 OR j.state = $2::smallint) AND ($3 = '' OR j.family = $3) "
      "AND ($4::boolean = false OR j.owner = $5) ORDER BY j.seq LIMIT $6::integer",
      {static_cast<int64_t>(filter.after_seq), int64_t{filter.state}, filter.family,
       filter.owner != nullptr ? "true" : "false", filter.owner != nullptr ? *filter.owner : "",
       int64_t{filter.limit} + 1});
  if (!rows.ok()) return rows.status();
  std::vector<v1::Job> out;
  *more = rows->size() > filter.limit;
  for (int r = 0; r < rows->size() && r < filter.limit; ++r) {
    v1::Job job;
    if (!job.ParseFromString(rows->Bytes(r, 1))) continue;
    job.set_event_count(rows->Int(r, 2));
    seqs->push_back(static_cast<uint64_t>(rows->Int(r, 0)));
    out.push_back(std::move(job));
  }
  return out;
}

absl::StatusOr<int64_t> PgJobStore::CountQueued(const std::string* owner) {
  const absl::Time asked = absl::Now();
  auto rows = Query().Exec(
      "SELECT count(*) FROM jobs WHERE state = 1 AND ($1::boolean = false OR owner = $2)",
      {owner != nullptr ? "true" : "false", owner != nullptr ? *owner : ""});
  if (!rows.ok()) return rows.status();
  if (owner == nullptr) {
    absl::MutexLock lock(&count_mu_);
    queue_count_ = {rows->Int(0, 0), asked, 0};
  }
  return rows->Int(0, 0);
}

absl::Status PgJobStore::ReadEvents(const std::string& id, int64_t from_event,
                                    std::vector<v1::JobEvent>* out, bool* done) {
  Timer timer(this, "events");
  // One statement, so one snapshot: a job seen terminal has its terminal
  // event seen too (they commit together).
  auto rows = Query().Exec(
      "SELECT j.state, e.event FROM jobs j LEFT JOIN LATERAL ("
      "SELECT event, number FROM events WHERE job_id = j.id AND number >= $2::bigint "
      "ORDER BY number LIMIT $3::integer) e ON true WHERE j.id = $1 ORDER BY e.number",
      {id, from_event, int64_t{kEventPage}});
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  *done = IsTerminal(static_cast<v1::JobState>(rows->Int(0, 0)));
  const size_t before = out->size();
  for (int r = 0; r < rows->size(); ++r) {
    if (!rows->at(r, 1).has_value()) break;  // no events from from_event on
    v1::JobEvent event;
    if (!event.ParseFromString(rows->Bytes(r, 1))) {
      return absl::DataLossError(absl::StrCat("store: an event of job ", id, " cannot be parsed"));
    }
    out->push_back(std::move(event));
  }
  if (out->size() > before && !IsTerminalEvent(out->back())) *done = false;  // a page; more follow
  return absl::OkStatus();
}

std::unique_ptr<PgJobStore::EventWaiter> PgJobStore::WatchEvents(const std::string& id) {
  absl::MutexLock lock(&waiters_mu_);
  WaitSlot& slot = waiters_[id];
  ++slot.watchers;
  return std::unique_ptr<EventWaiter>(
      new EventWaiter(this, id, slot.generation + all_generation_));
}

PgJobStore::EventWaiter::~EventWaiter() {
  absl::MutexLock lock(&store_->waiters_mu_);
  auto it = store_->waiters_.find(id_);
  if (--it->second.watchers == 0) store_->waiters_.erase(it);
}

void PgJobStore::EventWaiter::Wait(absl::Duration timeout) {
  absl::MutexLock lock(&store_->waiters_mu_);
  const absl::Time give_up = absl::Now() + timeout;
  auto current = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(store_->waiters_mu_) {
    return store_->waiters_[id_].generation + store_->all_generation_;
  };
  while (current() == seen_) {
    if (store_->waiters_cv_.WaitWithDeadline(&store_->waiters_mu_, give_up)) break;
  }
  seen_ = current();
}

void PgJobStore::WakeWatchers(const std::string& id) {
  absl::MutexLock lock(&waiters_mu_);
  if (id.empty()) {
    ++all_generation_;
  } else {
    auto it = waiters_.find(id);
    if (it == waiters_.end()) return;  // nobody here watches it
    ++it->second.generation;
  }
  waiters_cv_.SignalAll();
}

void PgJobStore::ListenLoop() {
  bool down = false;
  while (!stop_) {
    auto notes = listener_->WaitForNotifications(kPollInterval);
    if (!notes.ok()) {
      // Notifications may have been missed: everyone polls once.
      if (!down) std::fprintf(stderr, "solverd: %s\n", notes.status().ToString().c_str());
      down = true;
      WakeWatchers("");
      options_.on_queued();
      absl::SleepFor(kPollInterval);
      continue;
    }
    if (down) {
      down = false;
      WakeWatchers("");
      options_.on_queued();
    }
    for (const PgNotification& note : *notes) {
      if (note.channel == "solverd_events") {
        for (absl::string_view id : absl::StrSplit(note.payload, ' ', absl::SkipEmpty())) {
          WakeWatchers(std::string(id));
        }
      } else if (note.channel == "solverd_queue") {
        options_.on_queued();
      } else if (note.channel == "solverd_cancel") {
        options_.on_cancel(note.payload);
      }
    }
  }
}

}  // namespace solverd::server
