#include "server/families/sor/tuner_registry.h"

#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/util/time_util.h"
#include "server/state_files.h"
#include "server/status_util.h"

namespace solverd::server {
namespace {

namespace sor = ::solverd::sor;

constexpr size_t kMaxNameLength = 128;

absl::Status ValidateName(const std::string& name) {
  if (name.empty() || name.size() > kMaxNameLength) {
    return absl::InvalidArgumentError("name: must have 1 to 128 characters");
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return absl::InvalidArgumentError("name: only letters, digits, '.', '_' and '-'");
  }
  return absl::OkStatus();
}

sor::TunerAlgorithm ToKernel(v1::TunerAlgorithm a) {
  switch (a) {
    case v1::TUNER_ALGORITHM_FIXED: return sor::TunerAlgorithm::kFixed;
    case v1::TUNER_ALGORITHM_GRID_ORACLE: return sor::TunerAlgorithm::kGridOracle;
    case v1::TUNER_ALGORITHM_TSALLIS_INF_CB: return sor::TunerAlgorithm::kTsallisInfCb;
    case v1::TUNER_ALGORITHM_CHEBCB: return sor::TunerAlgorithm::kChebCb;
    default: return sor::TunerAlgorithm::kTsallisInf;
  }
}

sor::TunerConfig ToKernel(const v1::CreateTunerRequest& r) {
  sor::TunerConfig c;
  c.algorithm = ToKernel(r.algorithm());
  c.grid.assign(r.grid().begin(), r.grid().end());
  c.fixed_omega = r.fixed_omega();
  c.seed = r.seed();
  if (r.context_min() != 0 || r.context_max() != 0) {
    c.context_min = r.context_min();
    c.context_max = r.context_max();
  }
  if (r.context_bins() != 0) c.context_bins = r.context_bins();
  if (r.chebyshev_terms() != 0) c.chebyshev_terms = r.chebyshev_terms();
  return c;
}

// An arm's learned statistics; the probability is the caller's to add.
void ArmToProto(const sor::ArmState& a, v1::TunerArm* arm) {
  arm->set_omega(a.omega);
  arm->set_plays(a.plays);
  arm->set_mean_iterations(a.mean_iterations);
}

v1::TunerCheckpoint CheckpointToProto(const sor::TunerCheckpoint& c) {
  v1::TunerCheckpoint out;
  out.set_systems(c.systems);
  out.set_total_iterations(c.total_iterations);
  out.set_cost_sum(c.cost_sum);
  out.set_rng(c.rng);
  for (const sor::ArmState& a : c.arms) ArmToProto(a, out.add_arms());
  out.mutable_last_probabilities()->Add(c.last_probabilities.begin(), c.last_probabilities.end());
  out.mutable_learner()->Add(c.learner.begin(), c.learner.end());
  return out;
}

sor::TunerCheckpoint CheckpointFromProto(const v1::TunerCheckpoint& c) {
  sor::TunerCheckpoint out;
  out.systems = c.systems();
  out.total_iterations = c.total_iterations();
  out.cost_sum = c.cost_sum();
  out.rng = c.rng();
  for (const v1::TunerArm& a : c.arms()) {
    out.arms.push_back({a.omega(), a.plays(), a.mean_iterations(), 0});
  }
  out.last_probabilities.assign(c.last_probabilities().begin(), c.last_probabilities().end());
  out.learner.assign(c.learner().begin(), c.learner().end());
  return out;
}

}  // namespace

std::string TunerRegistry::PathFor(const std::string& name) const {
  return state_dir_ + "/tuners/" + name + ".tuner";
}

absl::Status TunerRegistry::Write(const std::string& name, const Entry& entry) const {
  if (state_dir_.empty()) return absl::OkStatus();
  v1::TunerCheckpoint checkpoint = CheckpointToProto(entry.tuner->Checkpoint());
  *checkpoint.mutable_config() = entry.config;
  *checkpoint.mutable_create_time() = google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
      absl::ToUnixNanos(entry.create_time));
  absl::MutexLock lock(&file_mu_);
  std::error_code ec;
  std::filesystem::create_directories(state_dir_ + "/tuners", ec);
  return WriteFileAtomically(PathFor(name), checkpoint.SerializeAsString());
}

absl::StatusOr<v1::Tuner> TunerRegistry::Persist(const std::string& name,
                                                  const Entry& used) const {
  if (shared_ == nullptr) {
    // `used` is the registry's own tuner, which has learned already.
    if (auto entry = Find(name); entry.ok()) {  // else deleted meanwhile: nothing to keep
      if (absl::Status s = Write(name, *entry); !s.ok()) return s;
    }
    return ToProto(name, used);
  }
  const std::vector<sor::TunerObservation> learned = used.tuner->TakeObservations();
  Entry now;
  auto updated = shared_->Update(name, [&](const PgTunerStore::Row& row)
                                           -> absl::StatusOr<std::string> {
    auto stored = FromRow(row);
    if (!stored.ok()) return stored.status();
    stored->tuner->Replay(learned);
    now = *std::move(stored);
    return CheckpointToProto(now.tuner->Checkpoint()).SerializeAsString();
  });
  if (!updated.ok()) return updated.status();
  return ToProto(name, now);
}

absl::StatusOr<TunerRegistry::Entry> TunerRegistry::FromRow(const PgTunerStore::Row& row) {
  v1::CreateTunerRequest config;
  v1::TunerCheckpoint checkpoint;
  if (!config.ParseFromString(row.config) || !checkpoint.ParseFromString(row.checkpoint)) {
    return absl::DataLossError(absl::StrCat("tuner ", row.name, ": unreadable in the store"));
  }
  auto entry = MakeEntry(config);
  if (!entry.ok()) return entry.status();
  if (absl::Status s = FromKernel(entry->tuner->Restore(CheckpointFromProto(checkpoint)));
      !s.ok()) {
    return s;
  }
  entry->create_time = row.create_time;
  return entry;
}

absl::StatusOr<v1::Tuner> TunerRegistry::CreateShared(const v1::CreateTunerRequest& request,
                                                      Entry fresh) {
  PgTunerStore::Row row;
  row.name = request.name();
  row.config = request.SerializeAsString();
  row.checkpoint = CheckpointToProto(fresh.tuner->Checkpoint()).SerializeAsString();
  bool created = false;
  auto stored = shared_->Create(row, max_tuners_, &created);
  if (!stored.ok()) return stored.status();
  auto entry = FromRow(*stored);
  if (!entry.ok()) return entry.status();
  if (!created &&
      !google::protobuf::util::MessageDifferencer::Equals(entry->config, request)) {
    return absl::AlreadyExistsError(absl::StrCat(
        "tuner ", request.name(), " exists with a different configuration"));
  }
  return ToProto(request.name(), *entry);
}

std::vector<std::string> TunerRegistry::Load() {
  std::vector<std::string> warnings;
  if (state_dir_.empty() || shared_ != nullptr) return warnings;
  std::error_code ec;
  for (const auto& file : std::filesystem::directory_iterator(state_dir_ + "/tuners", ec)) {
    if (file.path().extension() != ".tuner") continue;
    const std::string path = file.path().string();
    absl::StatusOr<std::string> bytes = ReadWholeFile(path);
    v1::TunerCheckpoint checkpoint;
    if (!bytes.ok() || !checkpoint.ParseFromString(*bytes)) {
      warnings.push_back(absl::StrCat(path, ": not a tuner checkpoint; skipped"));
      continue;
    }
    auto entry = MakeEntry(checkpoint.config());
    if (!entry.ok()) {
      warnings.push_back(absl::StrCat(path, ": ", entry.status().message(), "; skipped"));
      continue;
    }
    absl::Status restored = FromKernel(entry->tuner->Restore(CheckpointFromProto(checkpoint)));
    if (!restored.ok()) {
      warnings.push_back(absl::StrCat(path, ": ", restored.message(), "; skipped"));
      continue;
    }
    entry->create_time = absl::FromUnixNanos(
        google::protobuf::util::TimeUtil::TimestampToNanoseconds(checkpoint.create_time()));
    absl::MutexLock lock(&mu_);
    tuners_.emplace(checkpoint.config().name(), *std::move(entry));
  }
  return warnings;
}

absl::StatusOr<TunerRegistry::Entry> TunerRegistry::MakeEntry(
    const v1::CreateTunerRequest& request) {
  if (absl::Status s = ValidateName(request.name()); !s.ok()) return s;
  if (!v1::TunerAlgorithm_IsValid(request.algorithm())) {
    return absl::InvalidArgumentError("algorithm: unknown value");
  }
  Entry entry;
  std::unique_ptr<sor::Tuner> tuner;
  if (absl::Status s = FromKernel(sor::Tuner::Create(ToKernel(request), &tuner)); !s.ok()) {
    return s;
  }
  entry.tuner = std::move(tuner);
  entry.config = request;
  entry.create_time = absl::Now();
  return entry;
}

absl::StatusOr<v1::Tuner> TunerRegistry::Create(const v1::CreateTunerRequest& request) {
  auto made = MakeEntry(request);
  if (!made.ok()) return made.status();
  Entry entry = *std::move(made);
  if (shared_ != nullptr) return CreateShared(request, std::move(entry));
  absl::MutexLock lock(&mu_);
  auto it = tuners_.find(request.name());
  if (it != tuners_.end()) {
    if (google::protobuf::util::MessageDifferencer::Equals(it->second.config, request)) {
      return ToProto(it->first, it->second);
    }
    return absl::AlreadyExistsError(absl::StrCat(
        "tuner ", request.name(), " exists with a different configuration"));
  }
  if (static_cast<int>(tuners_.size()) >= max_tuners_) {
    return absl::ResourceExhaustedError(absl::StrCat("at most ", max_tuners_, " tuners"));
  }
  it = tuners_.emplace(request.name(), std::move(entry)).first;
  if (absl::Status s = Write(it->first, it->second); !s.ok()) {
    tuners_.erase(it);
    return s;
  }
  return ToProto(it->first, it->second);
}

absl::StatusOr<TunerRegistry::Entry> TunerRegistry::Find(const std::string& name) const {
  if (shared_ != nullptr) {  // the job's own copy, which records what it learns
    auto row = shared_->Get(name);
    if (!row.ok()) return row.status();
    auto entry = FromRow(*row);
    if (entry.ok()) entry->tuner->RecordObservations();
    return entry;
  }
  absl::MutexLock lock(&mu_);
  auto it = tuners_.find(name);
  if (it == tuners_.end()) return absl::NotFoundError(absl::StrCat("tuner ", name, " not found"));
  return it->second;
}

absl::StatusOr<v1::Tuner> TunerRegistry::Get(const std::string& name) const {
  auto entry = Find(name);
  if (!entry.ok()) return entry.status();
  return ToProto(name, *entry);
}

absl::StatusOr<v1::ListTunersResponse> TunerRegistry::List() const {
  v1::ListTunersResponse out;
  if (shared_ != nullptr) {
    auto rows = shared_->List();
    if (!rows.ok()) return rows.status();
    for (const PgTunerStore::Row& row : *rows) {
      auto entry = FromRow(row);
      if (entry.ok()) *out.add_tuners() = ToProto(row.name, *entry);
    }
    return out;
  }
  absl::MutexLock lock(&mu_);
  for (const auto& [name, entry] : tuners_) *out.add_tuners() = ToProto(name, entry);
  return out;
}

absl::Status TunerRegistry::Delete(const std::string& name) {
  if (shared_ != nullptr) return shared_->Delete(name);
  absl::MutexLock lock(&mu_);
  if (tuners_.erase(name) == 0) return absl::NotFoundError(absl::StrCat("tuner ", name, " not found"));
  if (!state_dir_.empty()) {
    absl::MutexLock file_lock(&file_mu_);
    std::remove(PathFor(name).c_str());
  }
  return absl::OkStatus();
}

v1::Tuner TunerRegistry::ToProto(const std::string& name, const Entry& entry) {
  v1::Tuner out;
  out.set_name(name);
  out.set_algorithm(entry.config.algorithm() == v1::TUNER_ALGORITHM_UNSPECIFIED
                        ? v1::TUNER_ALGORITHM_TSALLIS_INF
                        : entry.config.algorithm());
  const sor::TunerSnapshot snap = entry.tuner->Snapshot();
  out.set_systems(snap.systems);
  out.set_total_iterations(snap.total_iterations);
  for (const sor::ArmState& a : snap.arms) {
    v1::TunerArm* arm = out.add_arms();
    ArmToProto(a, arm);
    arm->set_probability(a.probability);
  }
  *out.mutable_create_time() = google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
      absl::ToUnixNanos(entry.create_time));
  *out.mutable_config() = entry.config;
  return out;
}

}  // namespace solverd::server
