// Fuzzes the proto-to-problem conversion of every family: the bytes are a
// JobSpec in the wire format, as SubmitJob receives it. Prepare() must
// accept it or say why (INVALID_ARGUMENT, ...), never crash; an accepted
// small problem is also run briefly, so odd values that pass validation
// reach the solvers too.
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "google/protobuf/stubs/logging.h"
#include "server/blob_store.h"
#include "server/family.h"
#include "server/tuner_registry.h"
#include "solverd/v1/jobs.pb.h"

namespace {

constexpr int64_t kMaxRunBytes = 1 << 20;  // larger accepted problems are only prepared

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace solverd::server;
  static BlobStore* blobs = [] {
    google::protobuf::SetLogHandler(nullptr);  // invalid UTF-8 etc. are expected here
    return new BlobStore(BlobStore::Options{});
  }();
  static TunerRegistry* tuners = [] {
    auto* registry = new TunerRegistry(8);
    solverd::v1::CreateTunerRequest request;
    request.set_name("fuzz");
    (void)registry->Create(request);
    return registry;
  }();
  solverd::v1::JobSpec spec;
  if (!spec.ParseFromArray(data, static_cast<int>(size))) return 0;
  const Family* family = FamilyFor(spec.problem_case());
  if (family == nullptr) return 0;
  auto job = family->Prepare(spec, PrepareContext{*blobs, tuners, ""});
  if (!job.ok() || (*job)->MemoryBytes() > kMaxRunBytes) return 0;
  solverd::CancelToken cancel;
  cancel.SetDeadline(std::chrono::steady_clock::now() + std::chrono::milliseconds(20));
  Lane lane;
  (void)(*job)->Run(lane, nullptr, &cancel);
  return 0;
}
