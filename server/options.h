// ServerOptions: every knob of solverd in one plain struct, with defaults.
// Filled from flags in flags.cc only; components take the part they need.
// A plain value, copied into each component: no sharing, no locks.
#ifndef SOLVERD_SERVER_OPTIONS_H_
#define SOLVERD_SERVER_OPTIONS_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/time/time.h"

namespace solverd::server {

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";  // gRPC address; port 0 picks one
  std::string metrics_address = "127.0.0.1";
  int metrics_port = 9464;  // 0 picks one
  std::string port_file;    // when set, "<grpc_port> <metrics_port>\n" is written here once serving

  std::string device = "auto";  // "auto" (GPUs when present), "cpu"
  int cpu_workers = -1;         // CPU lanes; -1: all cores without a GPU, 1 with
  int lanes_per_gpu = 4;        // CUDA streams per GPU
  int solver_threads = 0;       // threads per CPU solve; 0: cores / cpu lanes

  int max_queue = 10000;                       // queued jobs beyond: RESOURCE_EXHAUSTED
  // Largest problem accepted, per family (RESOURCE_EXHAUSTED past it), by
  // the family's SizeLimit flag ("max_ot_entries"); a family absent here
  // gets its SizeLimit's default.
  std::map<std::string, int64_t> max_problem_size;
  int max_batch = 16;                          // jobs merged into one batched launch
  absl::Duration max_queue_delay = absl::Microseconds(0);  // wait to fill a batch
  int64_t cpu_memory_budget_bytes = int64_t{8} << 30;       // admission, CPU lanes
  double gpu_memory_fraction = 0.9;            // admission, of each GPU's memory

  absl::Duration result_ttl = absl::Hours(24);  // finished jobs kept this long
  int max_jobs_retained = 100000;               // finished jobs kept at most
  int64_t blob_quota_bytes = int64_t{4} << 30;  // all blobs together
  absl::Duration blob_ttl = absl::Hours(24);
  std::string data_root;  // server-side input files are read only under it; empty: none
  int max_tuners = 1000;  // sor tuners at most
  // Jobs (journal), blobs and sor tuners persist here; empty: in memory only.
  std::string state_dir;
  // Jobs' outputs (and, without state_dir, uploads) are written here as they
  // are produced and kept as files; with `store` they are staged here and
  // copied into it. Empty: state_dir's blobs, else memory.
  std::string output_root;
  // The shared store of many replicas (a libpq URI postgres://...); empty:
  // the embedded store above. Its password comes from store_password_file
  // or libpq's PGPASSWORD / PGPASSFILE.
  std::string store;
  std::string store_password_file;
  absl::Duration lease = absl::Seconds(15);  // with store: a replica's hold on a job

  // Security: TLS when cert and key are set (PEM files); client certificates
  // signed by tls_client_ca are then required (mutual TLS) when it is set.
  // With auth_tokens_file, every SolverService call needs a bearer token and
  // sees only its own jobs; health, reflection and /metrics stay open.
  std::string tls_cert, tls_key, tls_client_ca;
  std::string auth_tokens_file;
  int max_queued_jobs_per_token = 1000;  // with tokens: queued jobs of one token at most
  int64_t max_blob_bytes_per_token = int64_t{1} << 30;  // with tokens: blob bytes of one token

  absl::Duration progress_interval = absl::Milliseconds(100);  // per job
  absl::Duration grace_period = absl::Seconds(30);  // running jobs at shutdown
};

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_OPTIONS_H_
