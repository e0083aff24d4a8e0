// The family registry, walked with a small fake family the way
// docs/adding-a-family.md describes a new one: it registers, the job
// manager finds it by its JobSpec case, enforces its size limit, batches by
// its key and runs it, and the real registry's list stays consistent (every
// JobSpec problem claimed once, every size flag defined).
#include "server/families/registry.h"

#include <atomic>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/synchronization/notification.h"
#include "server/job_manager.h"
#include "server/metrics.h"

namespace solverd::server {
namespace {

// [adding-a-family example]
// A family that "solves" a dmmv problem by echoing its destroy_size:
// enough to show every part a family provides. A real one converts in convert.cc and
// calls its kernels in Run().
class PreparedEcho final : public PreparedJob {
 public:
  explicit PreparedEcho(int64_t size) : size_(size) {}
  int64_t MemoryBytes() const override { return 1024; }  // admission control
  int64_t ProblemSize() const override { return size_; }  // against --max_echo_size
  std::string BatchKey() const override { return "echo"; }  // equal keys may batch
  JobOutcome Run(const Lane&, ProgressSink* sink, const CancelToken*) override {
    if (sink != nullptr) sink->Report(Progress{});
    JobOutcome outcome;
    outcome.result.emplace();
    outcome.result->mutable_dmmv()->set_seconds(static_cast<double>(size_));
    outcome.iterations = 1;
    return outcome;
  }

 private:
  const int64_t size_;
};

class EchoFamily final : public Family {
 public:
  static const FamilyInfo& Info() {
    static const FamilyInfo* const kInfo =
        new FamilyInfo{"echo", {v1::JobSpec::kDmmv}, {"max_echo_size", "units", 100}};
    return *kInfo;
  }
  static absl::StatusOr<std::unique_ptr<Family>> Create(const FamilyServices&) {
    return std::make_unique<EchoFamily>();
  }
  EchoFamily() : Family(Info()) {}

  absl::StatusOr<std::unique_ptr<PreparedJob>> Prepare(const v1::JobSpec& spec,
                                                       const PrepareContext&) const override {
    if (spec.dmmv().destroy_size() < 0) {
      return absl::InvalidArgumentError("dmmv.destroy_size: negative");
    }
    return std::make_unique<PreparedEcho>(spec.dmmv().destroy_size());
  }
};
// [adding-a-family example]

v1::JobSpec EchoSpec(int64_t size) {
  v1::JobSpec spec;
  spec.mutable_dmmv()->set_destroy_size(size);
  return spec;
}

std::unique_ptr<JobManager> EchoManager(const ServerOptions& options, Metrics* metrics) {
  Lane lane;
  lane.device = Device::Cpu();
  auto manager = JobManager::Create(options, {lane}, metrics, {RegistrationOf<EchoFamily>()});
  EXPECT_TRUE(manager.ok()) << manager.status();
  return manager.ok() ? *std::move(manager) : nullptr;
}

v1::Job WaitForEnd(JobManager& manager, const std::string& id) {
  EXPECT_TRUE(manager.Watch(id, 0, [](const v1::JobEvent&) { return true; },
                            [] { return false; }).ok());
  return *manager.Get(id);
}

TEST(FamilyRegistryTest, FindsAFamilyByItsJobSpecCase) {
  ServerOptions options;
  std::vector<std::string> warnings;
  auto registry = FamilyRegistry::Create(FamilyServices{&options, nullptr, &warnings},
                                         {RegistrationOf<EchoFamily>()});
  ASSERT_TRUE(registry.ok()) << registry.status();
  const Family* echo = (*registry)->ForProblem(v1::JobSpec::kDmmv);
  ASSERT_NE(echo, nullptr);
  EXPECT_EQ(echo->name(), "echo");
  EXPECT_EQ((*registry)->ForProblem(v1::JobSpec::kOt), nullptr);
  EXPECT_EQ((*registry)->problem_names(), "dmmv");
  EXPECT_NE((*registry)->Find<EchoFamily>(), nullptr);
}

TEST(FamilyRegistryTest, RejectsTwoFamiliesForOneCase) {
  ServerOptions options;
  std::vector<std::string> warnings;
  auto registry = FamilyRegistry::Create(
      FamilyServices{&options, nullptr, &warnings},
      {RegistrationOf<EchoFamily>(), {[]() -> const FamilyInfo& {
                                        static const FamilyInfo info{
                                            "echo2", {v1::JobSpec::kDmmv}, {"f", "u", 1}};
                                        return info;
                                      },
                                      &EchoFamily::Create}});
  EXPECT_EQ(registry.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(registry.status().message().find("JobSpec.dmmv"), std::string::npos)
      << registry.status();
}

TEST(FamilyRegistryTest, TheJobManagerRunsARegisteredFamily) {
  Metrics metrics;
  ServerOptions options;
  auto manager = EchoManager(options, &metrics);
  ASSERT_NE(manager, nullptr);
  auto job = manager->Submit(EchoSpec(7));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->family(), "echo");
  const v1::Job done = WaitForEnd(*manager, job->id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error_message();
  EXPECT_EQ(done.result().dmmv().seconds(), 7);

  // Errors come from the family, and the list of problems from the registry.
  EXPECT_EQ(manager->Submit(EchoSpec(-1)).status().message(), "dmmv.destroy_size: negative");
  v1::JobSpec ot;
  ot.mutable_ot();
  EXPECT_EQ(manager->Submit(ot).status().message(), "problem: set one of: dmmv");
}

TEST(FamilyRegistryTest, TheSizeLimitIsTheFamilysOwn) {
  Metrics metrics;
  ServerOptions options;
  auto by_default = EchoManager(options, &metrics);
  ASSERT_NE(by_default, nullptr);
  EXPECT_TRUE(by_default->Submit(EchoSpec(100)).ok());
  const absl::Status over = by_default->Submit(EchoSpec(101)).status();
  EXPECT_EQ(over.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(over.message(),
            "echo: a problem of 101 units is over the limit of 100 (--max_echo_size)");

  options.max_problem_size["max_echo_size"] = 5;
  Metrics metrics2;
  auto limited = EchoManager(options, &metrics2);
  ASSERT_NE(limited, nullptr);
  EXPECT_EQ(limited->Submit(EchoSpec(6)).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(FamilyRegistryTest, TheScheduleComesFromTheSpecOnce) {
  Metrics metrics;
  ServerOptions options;
  auto manager = EchoManager(options, &metrics);
  ASSERT_NE(manager, nullptr);
  v1::JobSpec spec = EchoSpec(3);
  spec.set_priority(4);
  spec.set_device(v1::DEVICE_CPU);
  spec.mutable_deadline()->set_seconds(60);
  auto job = manager->Submit(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->priority(), 4);
  EXPECT_EQ(job->device_preference(), v1::DEVICE_CPU);
  EXPECT_EQ(job->deadline_time().seconds() - job->create_time().seconds(), 60);
  EXPECT_EQ(WaitForEnd(*manager, job->id()).state(), v1::JOB_STATE_SUCCEEDED);
}

// The real list: every JobSpec problem has exactly one family, and every
// family's size flag exists as an int64 flag (flags.cc reads it by name).
TEST(FamilyRegistryTest, EveryProblemHasOneRegisteredFamily) {
  std::set<int> claimed;
  std::set<std::string> names;
  for (const FamilyRegistration& registration : RegisteredFamilies()) {
    const FamilyInfo& info = registration.info();
    EXPECT_TRUE(names.insert(std::string(info.name)).second) << info.name;
    for (v1::JobSpec::ProblemCase problem : info.problems) {
      EXPECT_TRUE(claimed.insert(problem).second) << info.name << " claims " << problem;
    }
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(info.size_limit.flag);
    ASSERT_NE(flag, nullptr) << info.name << ": no --" << info.size_limit.flag;
    EXPECT_TRUE(flag->TryGet<int64_t>().has_value()) << info.size_limit.flag;
    EXPECT_EQ(flag->DefaultValue(), std::to_string(info.size_limit.default_max));
  }
  const google::protobuf::OneofDescriptor* problems =
      v1::JobSpec::descriptor()->FindOneofByName("problem");
  for (int i = 0; i < problems->field_count(); ++i) {
    EXPECT_TRUE(claimed.contains(problems->field(i)->number()))
        << "JobSpec." << problems->field(i)->name() << " has no registered family";
  }
  EXPECT_EQ(claimed.size(), static_cast<size_t>(problems->field_count()));
}

}  // namespace
}  // namespace solverd::server
