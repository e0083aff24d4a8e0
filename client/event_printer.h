// EventPrinter: how solverctl shows a job's events: a live progress bar on
// a terminal, plain lines otherwise, or one JSON object per line (--json).
// Not thread-safe; one printer per watched job.
#ifndef SOLVERD_CLIENT_EVENT_PRINTER_H_
#define SOLVERD_CLIENT_EVENT_PRINTER_H_

#include <cstdio>
#include <string>

#include "solverd/v1/jobs.pb.h"

namespace solverd::client {

enum class OutputMode { kTerminal, kPlain, kJson };

// kJson when asked for, else kTerminal when `out` is a TTY, else kPlain.
OutputMode ChooseOutputMode(bool json, std::FILE* out);

// proto3 JSON with the .proto field names, on one line.
std::string ToJson(const google::protobuf::Message& message);

class EventPrinter {
 public:
  EventPrinter(OutputMode mode, std::FILE* out) : mode_(mode), out_(out) {}
  void Print(const v1::JobEvent& event);
  // Ends a progress bar line, if one is showing.
  void Finish();

 private:
  void PrintProgress(const v1::JobEvent& event);
  void PrintResult(const v1::JobResult& result);

  const OutputMode mode_;
  std::FILE* const out_;
  bool bar_showing_ = false;
};

// A short human summary of a job (for `get` and `list`).
std::string JobSummary(const v1::Job& job);

}  // namespace solverd::client

#endif  // SOLVERD_CLIENT_EVENT_PRINTER_H_
