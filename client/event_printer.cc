#include "client/event_printer.h"

#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_format.h"
#include "client/result_summary.h"
#include "google/protobuf/util/json_util.h"

namespace solverd::client {
namespace {

constexpr int kBarWidth = 30;

std::string StateName(v1::JobState s) {
  std::string name = v1::JobState_Name(s);
  return name.substr(std::string("JOB_STATE_").size());
}

}  // namespace

OutputMode ChooseOutputMode(bool json, std::FILE* out) {
  if (json) return OutputMode::kJson;
  return isatty(fileno(out)) ? OutputMode::kTerminal : OutputMode::kPlain;
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

void EventPrinter::Print(const v1::JobEvent& e) {
  if (mode_ == OutputMode::kJson) {
    std::fprintf(out_, "%s\n", ToJson(e).c_str());
    std::fflush(out_);
    return;
  }
  switch (e.kind_case()) {
    case v1::JobEvent::kProgress: PrintProgress(e); return;
    case v1::JobEvent::kResult: Finish(); PrintResult(e.result()); break;
    case v1::JobEvent::kState: {
      Finish();
      const v1::StateChange& s = e.state();
      std::string line = absl::StrFormat("[%d] %s %s", e.number(), e.job_id(), StateName(s.state()));
      if (!s.device().empty()) absl::StrAppendFormat(&line, " on %s", s.device());
      if (!s.error_message().empty()) absl::StrAppendFormat(&line, ": %s", s.error_message());
      std::fprintf(out_, "%s\n", line.c_str());
      break;
    }
    case v1::JobEvent::KIND_NOT_SET: break;
  }
  std::fflush(out_);
}

void EventPrinter::PrintProgress(const v1::JobEvent& e) {
  const v1::Progress& p = e.progress();
  std::string figures = p.stage() == "batch"
      ? absl::StrFormat("batch: %d solved  %.2fs", p.iteration(), p.elapsed_seconds())
      : absl::StrFormat("%s iter %d  residual %.3e  %.2fs", p.stage(), p.iteration(),
                        p.residual(), p.elapsed_seconds());
  if (mode_ == OutputMode::kPlain) {
    std::fprintf(out_, "[%d] progress %s\n", e.number(), figures.c_str());
    std::fflush(out_);
    return;
  }
  const int filled = static_cast<int>(std::clamp(p.fraction(), 0.0, 1.0) * kBarWidth);
  std::string bar(filled, '#');
  bar.resize(kBarWidth, '.');
  std::fprintf(out_, "\r\033[K[%s] %3.0f%%  %s", bar.c_str(), 100 * p.fraction(),
               figures.c_str());
  std::fflush(out_);
  bar_showing_ = true;
}

void EventPrinter::PrintResult(const v1::JobResult& r) {
  std::fputs(ResultSummary(r).c_str(), out_);
}

void EventPrinter::Finish() {
  if (bar_showing_) std::fprintf(out_, "\n");
  bar_showing_ = false;
}

std::string JobSummary(const v1::Job& job) {
  std::string line = absl::StrFormat("%-22s %-5s %-10s prio %-3d events %-5d", job.id(),
                                     job.family(), StateName(job.state()), job.priority(),
                                     job.event_count());
  if (!job.device().empty()) absl::StrAppendFormat(&line, " %s", job.device());
  if (!job.error_message().empty()) absl::StrAppendFormat(&line, "  (%s)", job.error_message());
  return line;
}

}  // namespace solverd::client
