#include "server/scheduling.h"

#include "google/protobuf/util/time_util.h"
#include "server/families/family.h"

namespace solverd::server {
namespace {

using google::protobuf::util::TimeUtil;

DeviceClass ToDeviceClass(v1::DevicePreference p) {
  switch (p) {
    case v1::DEVICE_CPU: return DeviceClass::kCpu;
    case v1::DEVICE_CUDA: return DeviceClass::kCuda;
    default: return DeviceClass::kAny;
  }
}

}  // namespace

SchedulingRecord MakeSchedulingRecord(const v1::Job& job, const PreparedJob& work) {
  SchedulingRecord record;
  record.priority = job.priority();
  if (job.has_deadline_time()) {
    record.deadline = absl::FromUnixNanos(TimeUtil::TimestampToNanoseconds(job.deadline_time()));
  }
  record.device = work.RequiresCpu() ? DeviceClass::kCpu : ToDeviceClass(job.device_preference());
  record.batch_key = work.BatchKey();
  record.memory_bytes = work.MemoryBytes();
  return record;
}

void SetSchedulingFields(const v1::JobSpec& spec, absl::Time create_time, v1::Job* job) {
  job->set_priority(spec.priority());
  job->set_device_preference(spec.device());
  if (spec.has_deadline()) {
    const absl::Time deadline =
        create_time + absl::Nanoseconds(TimeUtil::DurationToNanoseconds(spec.deadline()));
    *job->mutable_deadline_time() = TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(deadline));
  } else {
    job->clear_deadline_time();
  }
}

}  // namespace solverd::server
