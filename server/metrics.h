// Metrics: the solverd_* Prometheus metrics of DESIGN.md and, optionally,
// the HTTP exposer that serves them on /metrics.
//
// Durations are histograms so percentiles aggregate across replicas.
// Thread-safe (prometheus-cpp metrics are); family-labelled children are
// created on first use.
#ifndef SOLVERD_SERVER_METRICS_H_
#define SOLVERD_SERVER_METRICS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace solverd::server {

class Metrics {
 public:
  // Registry only (tests).
  Metrics();
  // Also serves /metrics on address:port; port 0 picks a free one.
  // UNAVAILABLE when the port cannot be bound.
  static absl::StatusOr<std::unique_ptr<Metrics>> Serve(const std::string& address, int port);

  int port() const { return port_; }  // 0 when not serving
  prometheus::Registry& registry() { return *registry_; }

  void JobSubmitted(const std::string& family);
  void JobFinished(const std::string& family, const std::string& status, double seconds);
  void QueueWait(const std::string& family, double seconds);
  void BatchSize(const std::string& family, int size);
  void Iterations(const std::string& family, int64_t count);
  void SetQueueDepth(int depth);
  void SetRunningJobs(int running);
  void SetDeviceMemoryUsed(const std::string& device, int64_t bytes);
  // The shared store (--store): each operation's latency, jobs claimed,
  // claims of a job whose lease lapsed (a re-run), reconnects, and whether
  // it answers.
  void StoreOperation(const std::string& operation, double seconds);
  void Claimed();
  void LeaseExpired();
  void StoreReconnects(int64_t count);
  void SetStoreUp(bool up);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
  prometheus::Family<prometheus::Counter>& submitted_;
  prometheus::Family<prometheus::Counter>& finished_;
  prometheus::Family<prometheus::Histogram>& duration_;
  prometheus::Family<prometheus::Histogram>& queue_wait_;
  prometheus::Family<prometheus::Gauge>& queue_depth_;
  prometheus::Family<prometheus::Gauge>& running_;
  prometheus::Family<prometheus::Histogram>& batch_size_;
  prometheus::Family<prometheus::Counter>& iterations_;
  prometheus::Family<prometheus::Gauge>& device_memory_;
  prometheus::Family<prometheus::Gauge>& build_info_;
  prometheus::Family<prometheus::Histogram>& store_latency_;
  prometheus::Family<prometheus::Counter>& store_events_;
  prometheus::Family<prometheus::Gauge>& store_up_;
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_METRICS_H_
