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
#include "server/families/registry.h"
#include "server/families/sor/family.h"
#include "server/options.h"
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
  static FamilyRegistry* families = [] {
    static const ServerOptions* options = new ServerOptions();
    static std::vector<std::string>* warnings = new std::vector<std::string>();
    auto made = FamilyRegistry::Create(FamilyServices{options, blobs, warnings});
    if (!made.ok()) __builtin_trap();
    solverd::v1::CreateTunerRequest request;
    request.set_name("fuzz");
    (void)(*made)->Find<SorFamily>()->tuners().Create(request);
    return made->release();
  }();
  solverd::v1::JobSpec spec;
  if (!spec.ParseFromArray(data, static_cast<int>(size))) return 0;
  const Family* family = families->ForProblem(spec.problem_case());
  if (family == nullptr) return 0;
  auto job = family->Prepare(spec, PrepareContext{*blobs, "", ""});
  if (!job.ok() || (*job)->MemoryBytes() > kMaxRunBytes) return 0;
  solverd::CancelToken cancel;
  cancel.SetDeadline(std::chrono::steady_clock::now() + std::chrono::milliseconds(20));
  Lane lane;
  (void)(*job)->Run(lane, nullptr, &cancel);
  return 0;
}
