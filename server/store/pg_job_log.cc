#include "server/store/pg_job_log.h"

#include <cstdio>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/store/pg_sql.h"

namespace solverd::server {
namespace {

constexpr size_t kMaxWritesPerBatch = 512;

// A view lands only while this replica holds the lease; a terminal one
// ($3 >= SUCCEEDED) releases it and stamps the finish time.
constexpr const char* kPutView = R"sql(
UPDATE jobs SET job = $2, state = $3::smallint, attempt = $4::integer,
  finish_time = CASE WHEN $3::smallint >= 3 THEN now() END,
  lease_owner = CASE WHEN $3::smallint >= 3 THEN NULL ELSE lease_owner END,
  lease_expiry = CASE WHEN $3::smallint >= 3 THEN NULL ELSE lease_expiry END
WHERE id = $1 AND lease_owner = $5)sql";

constexpr const char* kPutLoneEvent = R"sql(
INSERT INTO events(job_id, number, event)
SELECT $1, $2::bigint, $3 WHERE EXISTS (SELECT 1 FROM jobs WHERE id = $1 AND lease_owner = $4)
ON CONFLICT DO NOTHING)sql";

}  // namespace

PgJobLog::PgJobLog(std::unique_ptr<PgConnection> connection, std::string replica,
                   Observer observe)
    : connection_(std::move(connection)), replica_(std::move(replica)),
      observe_(std::move(observe)) {
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
    const absl::Time start = absl::Now();
    absl::Status status = Apply(batch, &dropped);
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
    } else if (retrying) {
      std::fprintf(stderr, "solverd: store %s is back; job writes applied\n",
                   connection_->name().c_str());
      retrying = false;
    }
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < batch.size(); ++i) queue_.pop_front();
    done_ += batch.size();
    dropped_ += dropped;
    changed_.SignalAll();
  }
}

absl::Status PgJobLog::Apply(const std::vector<Write>& batch, int64_t* dropped) {
  std::set<std::string> touched;
  for (const Write& w : batch) touched.insert(w.job_id);
  const std::string ids = PgTextArray({touched.begin(), touched.end()});
  return connection_->Transaction([&](PgTransaction& tx) -> absl::Status {
    *dropped = 0;
    // Row locks in id order, as the heartbeat takes them: no deadlock.
    auto locked = tx.Exec("SELECT 1 FROM jobs WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE",
                          {ids});
    if (!locked.ok()) return locked.status();
    for (const Write& write : batch) {
      if (absl::Status s = ApplyOne(tx, write, dropped); !s.ok()) return s;
    }
    // Delivered at commit, to every replica LISTENing.
    return tx.Exec("SELECT pg_notify('solverd_events', id) FROM unnest($1::text[]) AS id",
                   {ids})
        .status();
  });
}

absl::Status PgJobLog::ApplyOne(PgTransaction& tx, const Write& write, int64_t* dropped) {
  if (write.view.empty()) {
    const auto& [number, bytes] = write.events.front();
    auto put = tx.Exec(kPutLoneEvent, {write.job_id, number, PgParam::Bytes(bytes), replica_});
    if (!put.ok()) return put.status();
    if (put->affected() == 0) ++*dropped;
    return absl::OkStatus();
  }
  auto put = tx.Exec(kPutView, {write.job_id, PgParam::Bytes(write.view), int64_t{write.state},
                                int64_t{write.attempt}, replica_});
  if (!put.ok()) return put.status();
  if (put->affected() == 0) {
    ++*dropped;
    return absl::OkStatus();
  }
  return InsertEvents(tx, write.job_id, write.events);
}

}  // namespace solverd::server
