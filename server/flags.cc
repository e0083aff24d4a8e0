#include "server/flags.h"

#include <filesystem>
#include <string>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/families/registry.h"

namespace {
const solverd::server::ServerOptions kDefaults;
}  // namespace

ABSL_FLAG(std::string, listen, kDefaults.listen, "gRPC address HOST:PORT (port 0 picks one)");
ABSL_FLAG(std::string, metrics_address, kDefaults.metrics_address,
          "address the Prometheus /metrics endpoint binds to");
ABSL_FLAG(int, metrics_port, kDefaults.metrics_port, "Prometheus port (0 picks one)");
ABSL_FLAG(std::string, port_file, "",
          "write '<grpc_port> <metrics_port>' here once serving (for tests and scripts)");
ABSL_FLAG(std::string, device, kDefaults.device, "auto (GPUs when present), cpu, or cuda");
ABSL_FLAG(int, cpu_workers, kDefaults.cpu_workers,
          "CPU lanes; -1: one per core without a GPU, 1 with one");
ABSL_FLAG(int, lanes_per_gpu, kDefaults.lanes_per_gpu, "CUDA streams (lanes) per GPU");
ABSL_FLAG(int, solver_threads, kDefaults.solver_threads,
          "threads per CPU solve; 0: cores / CPU lanes");
ABSL_FLAG(int, max_queue, kDefaults.max_queue, "queued jobs beyond this get RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_batch, kDefaults.max_batch, "jobs merged into one batched launch at most");
// Each family defines its size-limit flag beside its code (FamilyInfo).
ABSL_FLAG(int64_t, max_queue_delay_us, 0, "how long a batch may wait to fill, microseconds");
ABSL_FLAG(int64_t, cpu_memory_budget_bytes, kDefaults.cpu_memory_budget_bytes,
          "memory CPU jobs may use together (admission control)");
ABSL_FLAG(double, gpu_memory_fraction, kDefaults.gpu_memory_fraction,
          "fraction of each GPU's memory jobs may use together");
ABSL_FLAG(absl::Duration, result_ttl, kDefaults.result_ttl, "how long finished jobs are kept");
ABSL_FLAG(int, max_jobs_retained, kDefaults.max_jobs_retained, "finished jobs kept at most");
ABSL_FLAG(int64_t, blob_quota_bytes, kDefaults.blob_quota_bytes, "bytes of all blobs together");
ABSL_FLAG(absl::Duration, blob_ttl, kDefaults.blob_ttl, "how long uploaded blobs are kept");
ABSL_FLAG(std::string, data_root, "",
          "directory whose files jobs may name (e.g. sor a_path); empty: none");
ABSL_FLAG(std::string, state_dir, "",
          "directory for state that survives restarts and crashes: jobs, their events and "
          "results, blobs, sor tuners; empty: in memory only");
ABSL_FLAG(std::string, output_root, "",
          "directory where job outputs (and, without --state_dir, uploads) are written as they "
          "are produced and served from; with --store they are staged there and copied into "
          "it; empty: --state_dir's blobs, else memory");
ABSL_FLAG(std::string, store, "",
          "shared store for many replicas: a libpq URI postgres://USER@HOST:PORT/DB[?sslmode=...] "
          "(password from --store_password_file, PGPASSWORD or PGPASSFILE, never here); "
          "empty: the embedded store (memory, or SQLite under --state_dir)");
ABSL_FLAG(std::string, store_password_file, "", "file whose first line is --store's password");
ABSL_FLAG(int, lease_seconds, 15,
          "with --store: a replica's hold on a job it runs, renewed every second; another "
          "replica re-runs the job once it lapses");
ABSL_FLAG(int, max_tuners, kDefaults.max_tuners, "sor tuners at most");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain: serve gRPC over TLS (with --tls_key)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA: require client certificates it signed (mutual TLS; needs --tls_cert)");
ABSL_FLAG(std::string, auth_tokens_file, "",
          "file of 'NAME TOKEN' lines: calls need 'authorization: Bearer TOKEN' and see only "
          "their own jobs; empty: no auth");
ABSL_FLAG(int, max_queued_jobs_per_token, kDefaults.max_queued_jobs_per_token,
          "with --auth_tokens_file: queued jobs one token may have at most");
ABSL_FLAG(int64_t, max_blob_bytes_per_token, kDefaults.max_blob_bytes_per_token,
          "with --auth_tokens_file: blob bytes one token may hold at most");
ABSL_FLAG(int, progress_interval_ms, 100, "minimum time between progress events of one job");
ABSL_FLAG(absl::Duration, grace_period, kDefaults.grace_period,
          "on SIGTERM/SIGINT, how long running jobs may finish before being cancelled");

namespace solverd::server {
namespace {

absl::Status Bad(absl::string_view flag, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", why));
}

// The size limit of every registered family, from the flag each defines.
absl::Status ReadSizeLimits(ServerOptions* o) {
  for (const FamilyRegistration& registration : RegisteredFamilies()) {
    const SizeLimit& limit = registration.info().size_limit;
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(limit.flag);
    absl::optional<int64_t> value;
    if (flag != nullptr) value = flag->TryGet<int64_t>();
    if (!value.has_value()) {
      return absl::InternalError(absl::StrCat(registration.info().name, ": no int64 flag --",
                                              limit.flag, " for its size limit"));
    }
    if (*value < 1) return Bad(limit.flag, "must be positive");
    o->max_problem_size[std::string(limit.flag)] = *value;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ServerOptions> OptionsFromFlags() {
  ServerOptions o;
  o.listen = absl::GetFlag(FLAGS_listen);
  o.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  o.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  o.port_file = absl::GetFlag(FLAGS_port_file);
  o.device = absl::GetFlag(FLAGS_device);
  o.cpu_workers = absl::GetFlag(FLAGS_cpu_workers);
  o.lanes_per_gpu = absl::GetFlag(FLAGS_lanes_per_gpu);
  o.solver_threads = absl::GetFlag(FLAGS_solver_threads);
  o.max_queue = absl::GetFlag(FLAGS_max_queue);
  o.max_batch = absl::GetFlag(FLAGS_max_batch);
  if (absl::Status limits = ReadSizeLimits(&o); !limits.ok()) return limits;
  o.max_queue_delay = absl::Microseconds(absl::GetFlag(FLAGS_max_queue_delay_us));
  o.cpu_memory_budget_bytes = absl::GetFlag(FLAGS_cpu_memory_budget_bytes);
  o.gpu_memory_fraction = absl::GetFlag(FLAGS_gpu_memory_fraction);
  o.result_ttl = absl::GetFlag(FLAGS_result_ttl);
  o.max_jobs_retained = absl::GetFlag(FLAGS_max_jobs_retained);
  o.blob_quota_bytes = absl::GetFlag(FLAGS_blob_quota_bytes);
  o.blob_ttl = absl::GetFlag(FLAGS_blob_ttl);
  o.progress_interval = absl::Milliseconds(absl::GetFlag(FLAGS_progress_interval_ms));
  o.grace_period = absl::GetFlag(FLAGS_grace_period);
  o.data_root = absl::GetFlag(FLAGS_data_root);
  o.max_tuners = absl::GetFlag(FLAGS_max_tuners);
  o.state_dir = absl::GetFlag(FLAGS_state_dir);
  o.output_root = absl::GetFlag(FLAGS_output_root);
  o.store = absl::GetFlag(FLAGS_store);
  o.store_password_file = absl::GetFlag(FLAGS_store_password_file);
  o.lease = absl::Seconds(absl::GetFlag(FLAGS_lease_seconds));
  o.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  o.tls_key = absl::GetFlag(FLAGS_tls_key);
  o.tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  o.auth_tokens_file = absl::GetFlag(FLAGS_auth_tokens_file);
  o.max_queued_jobs_per_token = absl::GetFlag(FLAGS_max_queued_jobs_per_token);
  o.max_blob_bytes_per_token = absl::GetFlag(FLAGS_max_blob_bytes_per_token);

  if (o.metrics_port < 0 || o.metrics_port > 65535) return Bad("metrics_port", "not a port");
  if (o.lanes_per_gpu < 1) return Bad("lanes_per_gpu", "must be at least 1");
  if (o.max_queue < 1) return Bad("max_queue", "must be at least 1");
  if (o.max_batch < 1) return Bad("max_batch", "must be at least 1");
  if (o.max_queue_delay < absl::ZeroDuration()) return Bad("max_queue_delay_us", "negative");
  if (o.cpu_memory_budget_bytes <= 0) return Bad("cpu_memory_budget_bytes", "must be positive");
  if (!(o.gpu_memory_fraction > 0 && o.gpu_memory_fraction <= 1)) {
    return Bad("gpu_memory_fraction", "must be in (0, 1]");
  }
  if (o.max_jobs_retained < 0) return Bad("max_jobs_retained", "negative");
  if (o.blob_quota_bytes < 0) return Bad("blob_quota_bytes", "negative");
  if (o.progress_interval < absl::ZeroDuration()) return Bad("progress_interval_ms", "negative");
  if (o.grace_period < absl::ZeroDuration()) return Bad("grace_period", "negative");
  if (o.max_tuners < 0) return Bad("max_tuners", "negative");
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    return Bad(o.tls_cert.empty() ? "tls_cert" : "tls_key", "--tls_cert and --tls_key go together");
  }
  if (!o.tls_client_ca.empty() && o.tls_cert.empty()) {
    return Bad("tls_client_ca", "mutual TLS needs --tls_cert and --tls_key");
  }
  if (o.max_queued_jobs_per_token < 1) return Bad("max_queued_jobs_per_token", "must be positive");
  if (o.max_blob_bytes_per_token < 0) return Bad("max_blob_bytes_per_token", "negative");
  if (o.lease < absl::Seconds(2)) return Bad("lease_seconds", "must be at least 2");
  if (!o.store.empty() && !absl::StartsWith(o.store, "postgres://") &&
      !absl::StartsWith(o.store, "postgresql://")) {
    return Bad("store", "must be a libpq URI postgres://USER@HOST:PORT/DB");
  }
  if (o.store.find('@') != std::string::npos &&
      o.store.substr(0, o.store.find('@')).find(':', o.store.find("://") + 3) !=
          std::string::npos) {
    return Bad("store", "put the password in --store_password_file or PGPASSWORD, not the URI");
  }
  if (!o.state_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.state_dir, ec);
    if (!std::filesystem::is_directory(o.state_dir)) return Bad("state_dir", "cannot create it");
  }
  if (!o.output_root.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.output_root, ec);
    if (!std::filesystem::is_directory(o.output_root)) {
      return Bad("output_root", "cannot create it");
    }
  }
  if (!o.data_root.empty() && !std::filesystem::is_directory(o.data_root)) {
    return Bad("data_root", "not a directory");
  }
  return o;
}

}  // namespace solverd::server
