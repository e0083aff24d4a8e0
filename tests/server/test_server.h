// TestServer: runs the real solverd binary on ephemeral ports for loopback
// tests, and stops it (SIGTERM, then SIGKILL) when destroyed.
#ifndef SOLVERD_TESTS_SERVER_TEST_SERVER_H_
#define SOLVERD_TESTS_SERVER_TEST_SERVER_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "client/solver_client.h"

namespace solverd::testing {

class TestServer {
 public:
  // Starts solverd with `extra_flags` and waits until it serves; on failure
  // ok() is false and error() says why.
  explicit TestServer(std::vector<std::string> extra_flags = {});
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  bool ok() const { return pid_ > 0 && grpc_port_ > 0; }
  const std::string& error() const { return error_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(grpc_port_); }
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  pid_t pid() const { return pid_; }
  // What the server has printed so far (stdout and stderr).
  std::string log() const;

  // Sends `signal` and waits up to `timeout_ms` for exit; returns the exit
  // status, or -1 if it did not exit in time.
  int StopWith(int signal, int timeout_ms);

 private:
  pid_t pid_ = -1;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  std::string dir_;
  std::string error_;
};

// Runs `argv` to completion; returns its exit status and fills *output
// with stdout+stderr.
int RunProgram(const std::vector<std::string>& argv, std::string* output);

// GET http://127.0.0.1:port/path; empty on failure.
std::string HttpGet(int port, const std::string& path);

// Blocks until the job has reported progress (so it is really running).
void WaitForProgress(client::SolverClient& c, const std::string& id);

}  // namespace solverd::testing

#endif  // SOLVERD_TESTS_SERVER_TEST_SERVER_H_
