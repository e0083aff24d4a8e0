// SchedulingRecord: what the scheduler needs to know of a job, decided once
// at submit (or at recovery) and kept on the Job: its priority, deadline,
// device class, batching key and memory estimate. The user-given parts
// (priority, deadline, device preference) are persisted with the job's
// public view (Job.priority, deadline_time, device_preference); the
// family-given parts (batch key, memory) come from the PreparedJob, which a
// restart builds again. Plain values; copy freely.
#ifndef SOLVERD_SERVER_SCHEDULING_H_
#define SOLVERD_SERVER_SCHEDULING_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "solverd/v1/jobs.pb.h"

namespace solverd::server {

class PreparedJob;  // server/families/family.h

enum class DeviceClass { kAny, kCpu, kCuda };

struct SchedulingRecord {
  int priority = 0;                              // higher first
  absl::Time deadline = absl::InfiniteFuture();  // absolute
  DeviceClass device = DeviceClass::kAny;
  std::string batch_key;  // empty: never batched
  int64_t memory_bytes = 0;
};

// The record of a job whose public view is `job` (priority, deadline_time,
// device_preference) and whose prepared work is `work`.
SchedulingRecord MakeSchedulingRecord(const v1::Job& job, const PreparedJob& work);

// Writes the user-given scheduling fields of `spec` into `job`; the deadline
// counts from `create_time`. REQUIRES: spec.deadline(), if set, is positive.
void SetSchedulingFields(const v1::JobSpec& spec, absl::Time create_time, v1::Job* job);

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_SCHEDULING_H_
