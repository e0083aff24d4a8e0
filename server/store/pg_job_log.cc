#include "server/store/pg_job_log.h"

#include <cstdio>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/store/pg_sql.h"

namespace solverd::server {
namespace {

constexpr size_t kMaxWritesPerBatch = 512;

// The new views of the batch's jobs (the last of each): a terminal one
// (state >= SUCCEEDED) releases the lease and stamps the finish time.
constexpr const char* kPutViews = R"sql(
UPDATE jobs j SET job = v.job, state = v.state, attempt = v.attempt,
  finish_time = CASE WHEN v.state >= 3 THEN now() END,
  lease_owner = CASE WHEN v.state >= 3 THEN NULL ELSE j.lease_owner END,
  lease_expiry = CASE WHEN v.state >= 3 THEN NULL ELSE j.lease_expiry END
FROM (VALUES %s) AS v(id, job, state, attempt) WHERE j.id = v.id)sql";

// Under PostgreSQL's 8,000-byte limit of a NOTIFY payload.
constexpr size_t kMaxNotifyPayload = 7000;

// `ids` joined by spaces into strings of at most `limit` bytes (an id
// longer than that alone).
std::vector<std::string> JoinedUnder(const std::set<std::string>& ids, size_t limit) {
  std::vector<std::string> out;
  for (const std::string& id : ids) {
    if (out.empty() || out.back().size() + 1 + id.size() > limit) {
      out.push_back(id);
    } else {
      absl::StrAppend(&out.back(), " ", id);
    }
  }
  return out;
}

// A statement's parameters stay well under PostgreSQL's 65,535.
constexpr size_t kMaxParamsPerStatement = 30000;

}  // namespace

PgJobLog::PgJobLog(std::unique_ptr<PgConnection> connection, std::string replica,
                   Observer observe, DurableCallback on_durable)
    : connection_(std::move(connection)), replica_(std::move(replica)),
      observe_(std::move(observe)), on_durable_(std::move(on_durable)) {
  writer_ = std::thread([this] { WriterLoop(); });
}

PgJobLog::~PgJobLog() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    changed_.SignalAll();
  }
  writer_.join();
}

void PgJobLog::PutEvent(const v1::JobEvent& event) {
  Write write;
  write.job_id = event.job_id();
  write.events.emplace_back(event.number(), event.SerializeAsString());
  Enqueue(std::move(write));
}

void PgJobLog::PutJob(const v1::Job& job, const std::vector<v1::JobEvent>& events) {
  Write write;
  write.job_id = job.id();
  v1::Job view = job;
  view.clear_result();  // it is an event
  write.view = view.SerializeAsString();
  write.state = job.state();
  write.attempt = job.attempt();
  for (const v1::JobEvent& e : events) write.events.emplace_back(e.number(), e.SerializeAsString());
  Enqueue(std::move(write));
}

void PgJobLog::Enqueue(Write write) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(write));
  ++enqueued_;
  changed_.SignalAll();
}

absl::Status PgJobLog::Flush(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const uint64_t target = enqueued_;
  const absl::Time give_up = absl::Now() + timeout;
  while (done_ < target) {
    if (changed_.WaitWithDeadline(&mu_, give_up)) break;
  }
  if (done_ >= target) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat("store ", connection_->name(), ": ",
                                             target - done_, " job writes still waiting"));
}

int64_t PgJobLog::pending() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(queue_.size());
}

int64_t PgJobLog::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

void PgJobLog::WriterLoop() {
  bool retrying = false;
  for (;;) {
    std::vector<Write> batch;
    bool stopping;
    {
      absl::MutexLock lock(&mu_);
      while (queue_.empty() && !stop_) changed_.Wait(&mu_);
      if (queue_.empty()) return;
      stopping = stop_;
      for (size_t i = 0; i < queue_.size() && i < kMaxWritesPerBatch; ++i) {
        batch.push_back(queue_[i]);
      }
    }
    int64_t dropped = 0;
    std::map<std::string, int64_t> stored;
    const absl::Time start = absl::Now();
    absl::Status status = Apply(batch, &dropped, &stored);
    observe_("write_batch", absl::ToDoubleSeconds(absl::Now() - start));
    if (absl::IsAborted(status)) continue;  // a deadlock or serialization failure: again
    if (absl::IsUnavailable(status) && !stopping) {
      if (!retrying) std::fprintf(stderr, "solverd: %s; retrying\n", status.ToString().c_str());
      retrying = true;
      absl::SleepFor(kRetryInterval);
      continue;
    }
    if (!status.ok()) {
      // Not the store's absence: this batch cannot land (or we are stopping
      // without a store). Say so; the jobs' leases then let them run again.
      std::fprintf(stderr, "solverd: %zu job writes lost: %s\n", batch.size(),
                   status.ToString().c_str());
    } else {
      for (const auto& [job_id, events] : stored) on_durable_(job_id, events);
      if (retrying) {
        std::fprintf(stderr, "solverd: store %s is back; job writes applied\n",
                     connection_->name().c_str());
        retrying = false;
      }
    }
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < batch.size(); ++i) queue_.pop_front();
    done_ += batch.size();
    dropped_ += dropped;
    changed_.SignalAll();
  }
}

absl::Status PgJobLog::Apply(const std::vector<Write>& batch, int64_t* dropped,
                             std::map<std::string, int64_t>* stored) {
  std::set<std::string> touched;
  for (const Write& w : batch) touched.insert(w.job_id);
  return connection_->Transaction([&](PgTransaction& tx) -> absl::Status {
    // Row locks in id order, as the heartbeat takes them: no deadlock. Only
    // the jobs this replica still holds the lease of take their writes; the
    // locks keep it so until the commit.
    auto held = tx.Exec(
        "SELECT id FROM jobs WHERE id = ANY($1::text[]) AND lease_owner = $2 ORDER BY id "
        "FOR UPDATE",
        {PgTextArray({touched.begin(), touched.end()}), replica_});
    if (!held.ok()) return held.status();
    std::set<std::string> leased;
    for (int r = 0; r < held->size(); ++r) leased.insert(held->Text(r, 0));
    *dropped = 0;
    stored->clear();
    std::vector<const Write*> landing;
    for (const Write& w : batch) {
      if (!leased.contains(w.job_id)) {
        ++*dropped;
        continue;
      }
      landing.push_back(&w);
      // A job's writes queue in event order, so the last one's last event
      // closes a stored prefix.
      if (!w.events.empty()) (*stored)[w.job_id] = w.events.back().first + 1;
    }
    if (absl::Status s = ApplyLanding(tx, landing); !s.ok()) return s;
    // Delivered at commit, to every replica LISTENing: the ids joined by
    // spaces, a few notifications per batch rather than one per job.
    return tx.Exec("SELECT pg_notify('solverd_events', ids) FROM unnest($1::text[]) AS ids",
                   {PgTextArray(JoinedUnder(leased, kMaxNotifyPayload))})
        .status();
  });
}

absl::Status PgJobLog::ApplyLanding(PgTransaction& tx, const std::vector<const Write*>& writes) {
  // Each job's last view stands for its earlier ones in the batch (a job's
  // views only move forward); every event goes in.
  std::map<std::string, const Write*> last_view;
  for (const Write* w : writes) {
    if (!w->view.empty()) last_view[w->job_id] = w;
  }
  std::vector<PgParam> params;
  std::string views;
  for (const auto& [id, w] : last_view) {
    AppendPgRow(&views, &params, {{id, "text"}, {PgParam::Bytes(w->view), "bytea"},
                                  {int64_t{w->state}, "smallint"},
                                  {int64_t{w->attempt}, "integer"}});
  }
  if (!views.empty()) {
    if (auto put = tx.Exec(absl::StrFormat(kPutViews, views), params); !put.ok()) {
      return put.status();
    }
  }
  // The events, as few statements as the parameter limit allows.
  params.clear();
  std::string values;
  auto flush = [&]() -> absl::Status {
    if (values.empty()) return absl::OkStatus();
    auto put = tx.Exec(absl::StrCat("INSERT INTO events(job_id, number, event) SELECT e.id, "
                                    "e.number, e.event FROM (VALUES ", values,
                                    ") AS e(id, number, event) ON CONFLICT DO NOTHING"),
                       params);
    params.clear();
    values.clear();
    return put.status();
  };
  for (const Write* w : writes) {
    for (const auto& [number, bytes] : w->events) {
      AppendPgRow(&values, &params,
                  {{w->job_id, "text"}, {number, "bigint"}, {PgParam::Bytes(bytes), "bytea"}});
      if (params.size() >= kMaxParamsPerStatement) {
        if (absl::Status s = flush(); !s.ok()) return s;
      }
    }
  }
  return flush();
}

}  // namespace solverd::server
