// Human-readable summaries of a job's result, one family at a time, for
// solverctl's watch, get and the task commands (--json prints the result
// itself). Pure functions, safe from any thread.
#ifndef SOLVERD_CLIENT_RESULT_SUMMARY_H_
#define SOLVERD_CLIENT_RESULT_SUMMARY_H_

#include <string>

#include "solverd/v1/jobs.pb.h"

namespace solverd::client {

// Lines (each ending in '\n') saying what the result holds: the figures a
// user looks for first, and per item (system, instance, layer) one line,
// at most `max_items` of them and a count of the rest.
std::string ResultSummary(const v1::JobResult& result, int max_items = 20);

}  // namespace solverd::client

#endif  // SOLVERD_CLIENT_RESULT_SUMMARY_H_
