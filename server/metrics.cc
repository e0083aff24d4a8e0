#include "server/metrics.h"

#include <exception>

#include "absl/strings/str_cat.h"
#include "common/device.h"

namespace solverd::server {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

// Seconds, from 1 ms to ~1 h, roughly x2.5 per bucket.
const prometheus::Histogram::BucketBoundaries& DurationBuckets() {
  static const auto* b = new prometheus::Histogram::BucketBoundaries{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
      25, 50, 100, 250, 500, 1000, 2500};
  return *b;
}

const prometheus::Histogram::BucketBoundaries& BatchBuckets() {
  static const auto* b = new prometheus::Histogram::BucketBoundaries{
      1, 2, 4, 8, 16, 32, 64, 128, 256};
  return *b;
}

// Seconds, from 0.1 ms to 10 s: a store operation on a healthy database
// takes well under a millisecond on loopback.
const prometheus::Histogram::BucketBoundaries& StoreBuckets() {
  static const auto* b = new prometheus::Histogram::BucketBoundaries{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 10};
  return *b;
}

}  // namespace

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      submitted_(BuildCounter().Name("solverd_jobs_submitted_total")
                     .Help("Jobs accepted by SubmitJob, by family").Register(*registry_)),
      finished_(BuildCounter().Name("solverd_jobs_finished_total")
                    .Help("Jobs that reached a terminal state, by family and status")
                    .Register(*registry_)),
      duration_(BuildHistogram().Name("solverd_job_duration_seconds")
                    .Help("Run time of finished jobs (start to finish)").Register(*registry_)),
      queue_wait_(BuildHistogram().Name("solverd_queue_wait_seconds")
                      .Help("Time jobs spent queued before a lane took them")
                      .Register(*registry_)),
      queue_depth_(BuildGauge().Name("solverd_queue_depth")
                       .Help("Jobs waiting in the queue").Register(*registry_)),
      running_(BuildGauge().Name("solverd_running_jobs")
                   .Help("Jobs running on a lane").Register(*registry_)),
      batch_size_(BuildHistogram().Name("solverd_batch_size")
                      .Help("Jobs per launched batch").Register(*registry_)),
      iterations_(BuildCounter().Name("solverd_solver_iterations_total")
                      .Help("Solver iterations done, by family").Register(*registry_)),
      device_memory_(BuildGauge().Name("solverd_device_memory_used_bytes")
                         .Help("Memory lent to running jobs, by device").Register(*registry_)),
      build_info_(BuildGauge().Name("solverd_build_info")
                      .Help("Always 1; labels say the version and CUDA support")
                      .Register(*registry_)),
      store_latency_(BuildHistogram().Name("solverd_store_operation_seconds")
                         .Help("Shared store operations (--store), by operation")
                         .Register(*registry_)),
      store_events_(BuildCounter().Name("solverd_store_events_total")
                        .Help("Shared store: claims, lease_expiries (re-runs of a job whose "
                              "replica stopped renewing) and reconnects")
                        .Register(*registry_)),
      store_up_(BuildGauge().Name("solverd_store_up")
                    .Help("1 while the shared store answers (always 1 when embedded)")
                    .Register(*registry_)) {
  build_info_.Add({{"version", SOLVERD_VERSION}, {"cuda", CudaCompiledIn() ? "true" : "false"}})
      .Set(1);
  queue_depth_.Add({}).Set(0);
  running_.Add({}).Set(0);
  store_up_.Add({}).Set(1);
  // From zero, so that rates over them exist before the first event.
  for (const char* event : {"claims", "lease_expiries", "reconnects"}) {
    store_events_.Add({{"event", event}});
  }
}

absl::StatusOr<std::unique_ptr<Metrics>> Metrics::Serve(const std::string& address, int port) {
  auto metrics = std::make_unique<Metrics>();
  try {
    metrics->exposer_ = std::make_unique<prometheus::Exposer>(
        absl::StrCat(address, ":", port), /*num_threads=*/2);
  } catch (const std::exception& e) {  // civetweb reports bind failures by throwing
    return absl::UnavailableError(
        absl::StrCat("metrics: cannot listen on ", address, ":", port, ": ", e.what()));
  }
  metrics->exposer_->RegisterCollectable(metrics->registry_);
  auto ports = metrics->exposer_->GetListeningPorts();
  metrics->port_ = ports.empty() ? port : ports.front();
  return metrics;
}

void Metrics::JobSubmitted(const std::string& family) {
  submitted_.Add({{"family", family}}).Increment();
}

void Metrics::JobFinished(const std::string& family, const std::string& status, double seconds) {
  finished_.Add({{"family", family}, {"status", status}}).Increment();
  duration_.Add({{"family", family}}, DurationBuckets()).Observe(seconds);
}

void Metrics::QueueWait(const std::string& family, double seconds) {
  queue_wait_.Add({{"family", family}}, DurationBuckets()).Observe(seconds);
}

void Metrics::BatchSize(const std::string& family, int size) {
  batch_size_.Add({{"family", family}}, BatchBuckets()).Observe(size);
}

void Metrics::Iterations(const std::string& family, int64_t count) {
  iterations_.Add({{"family", family}}).Increment(static_cast<double>(count));
}

void Metrics::SetQueueDepth(int depth) { queue_depth_.Add({}).Set(depth); }
void Metrics::SetRunningJobs(int running) { running_.Add({}).Set(running); }

void Metrics::SetDeviceMemoryUsed(const std::string& device, int64_t bytes) {
  device_memory_.Add({{"device", device}}).Set(static_cast<double>(bytes));
}

}  // namespace solverd::server

namespace solverd::server {

void Metrics::StoreOperation(const std::string& operation, double seconds) {
  store_latency_.Add({{"operation", operation}}, StoreBuckets()).Observe(seconds);
}

void Metrics::Claimed() { store_events_.Add({{"event", "claims"}}).Increment(); }
void Metrics::LeaseExpired() { store_events_.Add({{"event", "lease_expiries"}}).Increment(); }

void Metrics::StoreReconnects(int64_t count) {
  if (count > 0) store_events_.Add({{"event", "reconnects"}}).Increment(static_cast<double>(count));
}

void Metrics::SetStoreUp(bool up) { store_up_.Add({}).Set(up ? 1 : 0); }

}  // namespace solverd::server
