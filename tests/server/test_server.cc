#include "test_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

namespace solverd::testing {
namespace {

pid_t Spawn(const std::vector<std::string>& argv, const std::string& log_path) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    dup2(fd, 1);
    dup2(fd, 2);
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv(args[0], args.data());
  _exit(127);
}

int WaitExit(pid_t pid, int timeout_ms) {
  for (int waited = 0; waited <= timeout_ms; waited += 10) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

}  // namespace

TestServer::TestServer(std::vector<std::string> extra_flags) {
  char tmpl[] = "/tmp/solverd-test-XXXXXX";
  dir_ = mkdtemp(tmpl);
  const std::string port_file = dir_ + "/ports";
  std::vector<std::string> argv = {SOLVERD_BINARY, "--listen=127.0.0.1:0", "--metrics-port=0",
                                   "--port-file=" + port_file, "--grace-period=5s"};
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  pid_ = Spawn(argv, dir_ + "/log");
  for (int i = 0; i < 1000; ++i) {
    std::ifstream in(port_file);
    if (in >> grpc_port_ >> metrics_port_) return;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      std::ifstream log(dir_ + "/log");
      error_.assign(std::istreambuf_iterator<char>(log), {});
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  error_ = "solverd did not write its port file within 10 s";
}

TestServer::~TestServer() {
  if (pid_ > 0 && StopWith(SIGTERM, 10000) < 0) {
    kill(pid_, SIGKILL);
    WaitExit(pid_, 5000);
  }
  std::system(("rm -rf " + dir_).c_str());
}

std::string TestServer::log() const {
  std::ifstream in(dir_ + "/log");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

int TestServer::StopWith(int signal, int timeout_ms) {
  if (pid_ <= 0) return -1;
  kill(pid_, signal);
  int status = WaitExit(pid_, timeout_ms);
  if (status >= 0) pid_ = -1;
  return status;
}

int RunProgram(const std::vector<std::string>& argv, std::string* output) {
  char tmpl[] = "/tmp/solverd-run-XXXXXX";
  int fd = mkstemp(tmpl);
  close(fd);
  pid_t pid = Spawn(argv, tmpl);
  int status = WaitExit(pid, 120000);
  std::ifstream in(tmpl);
  output->assign(std::istreambuf_iterator<char>(in), {});
  unlink(tmpl);
  return status;
}

std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
  if (write(fd, req.data(), req.size()) < 0) {
    close(fd);
    return "";
  }
  std::string out;
  char buf[65536];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) out.append(buf, n);
  close(fd);
  return out;
}

void WaitForProgress(client::SolverClient& c, const std::string& id) {
  grpc::ClientContext ctx;
  v1::WatchJobRequest req;
  req.set_job_id(id);
  auto reader = c.stub().WatchJob(&ctx, req);
  v1::JobEvent e;
  while (reader->Read(&e) && !e.has_progress()) {}
  ctx.TryCancel();
  reader->Finish();
}

}  // namespace solverd::testing
