#include "server/job_store.h"

#include <algorithm>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace solverd::server {

std::string JobStore::NewId() {
  static absl::BitGen* gen = new absl::BitGen();
  static absl::Mutex gen_mu(absl::kConstInit);
  absl::MutexLock lock(&gen_mu);
  return absl::StrFormat("job-%016x", absl::Uniform<uint64_t>(*gen));
}

uint64_t JobStore::NextSeq() {
  absl::MutexLock lock(&mu_);
  return next_seq_++;
}

namespace {

// The idempotency index key of a job: its owner and its key.
std::string IndexKey(const std::string& owner, const std::string& key) {
  return absl::StrCat(owner.size(), ":", owner, key);
}

}  // namespace

absl::StatusOr<std::shared_ptr<Job>> JobStore::AddOrGet(std::shared_ptr<Job> job,
                                                        const v1::JobSpec& problem) {
  {
    absl::MutexLock lock(&mu_);
    if (!job->idempotency_key().empty()) {
      const std::string key = IndexKey(job->owner(), job->idempotency_key());
      auto it = by_key_.find(key);
      if (it != by_key_.end()) {
        auto existing = by_id_.find(it->second);
        if (existing != by_id_.end()) return existing->second;
      }
      by_key_[key] = job->id();
    }
    by_id_[job->id()] = job;
    by_seq_[job->seq()] = job;
  }
  if (options_.journal == nullptr) return job;
  // Outside mu_, so submitters share the journal's fsyncs.
  absl::Status persisted = job->Persist(options_.journal, problem.SerializeAsString());
  if (!persisted.ok()) {
    Remove(job->id());
    return persisted;
  }
  return job;
}

void JobStore::Restore(std::shared_ptr<Job> job) {
  absl::MutexLock lock(&mu_);
  next_seq_ = std::max(next_seq_, job->seq() + 1);
  if (!job->idempotency_key().empty()) {
    by_key_[IndexKey(job->owner(), job->idempotency_key())] = job->id();
  }
  by_id_[job->id()] = job;
  by_seq_[job->seq()] = job;
}

void JobStore::Remove(const std::string& id) {
  absl::MutexLock lock(&mu_);
  if (EraseLocked(id) && options_.journal != nullptr) options_.journal->DeleteJob(id);
}

bool JobStore::EraseLocked(const std::string& id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return false;
  const Job& job = *it->second;
  if (!job.idempotency_key().empty()) {
    auto key = by_key_.find(IndexKey(job.owner(), job.idempotency_key()));
    if (key != by_key_.end() && key->second == id) by_key_.erase(key);
  }
  by_seq_.erase(job.seq());
  by_id_.erase(it);
  return true;
}

std::shared_ptr<Job> JobStore::Find(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

std::shared_ptr<Job> JobStore::FindByIdempotencyKey(const std::string& owner,
                                                    const std::string& key) const {
  absl::MutexLock lock(&mu_);
  auto it = by_key_.find(IndexKey(owner, key));
  if (it == by_key_.end()) return nullptr;
  auto job = by_id_.find(it->second);
  return job == by_id_.end() ? nullptr : job->second;
}

std::vector<std::shared_ptr<Job>> JobStore::List(const Filter& filter, bool* more) const {
  std::vector<std::shared_ptr<Job>> out;
  *more = false;
  absl::MutexLock lock(&mu_);
  for (auto it = by_seq_.upper_bound(filter.after_seq); it != by_seq_.end(); ++it) {
    const Job& job = *it->second;
    if (!filter.family.empty() && job.family()->name() != filter.family) continue;
    if (filter.owner != nullptr && job.owner() != *filter.owner) continue;
    if (filter.state != v1::JOB_STATE_UNSPECIFIED && job.state() != filter.state) continue;
    if (static_cast<int>(out.size()) == filter.limit) {
      *more = true;
      break;
    }
    out.push_back(it->second);
  }
  return out;
}

int JobStore::Sweep(absl::Time now) {
  absl::MutexLock lock(&mu_);
  std::vector<uint64_t> finished;  // oldest first
  for (const auto& [seq, job] : by_seq_) {
    if (job->terminal()) finished.push_back(seq);
  }
  const int over_cap = std::max<int>(0, static_cast<int>(finished.size()) - options_.max_jobs_retained);
  int dropped = 0;
  for (size_t i = 0; i < finished.size(); ++i) {
    auto it = by_seq_.find(finished[i]);
    const bool expired = it->second->finish_time() + options_.result_ttl <= now;
    if (static_cast<int>(i) >= over_cap && !expired) continue;
    const std::string id = it->second->id();
    EraseLocked(id);
    if (options_.journal != nullptr) options_.journal->DeleteJob(id);
    ++dropped;
  }
  return dropped;
}

size_t JobStore::size() const {
  absl::MutexLock lock(&mu_);
  return by_id_.size();
}

std::vector<std::string> JobStore::Ids() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> ids;
  ids.reserve(by_id_.size());
  for (const auto& [id, job] : by_id_) ids.push_back(id);
  return ids;
}

}  // namespace solverd::server
