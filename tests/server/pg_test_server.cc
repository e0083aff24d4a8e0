#include "pg_test_server.h"

#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace solverd::testing {
namespace {

int FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

}  // namespace

std::string PgTestServer::BinDir() {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    if (fs::exists(entry.path() / "bin" / "initdb")) return (entry.path() / "bin").string();
  }
  return "";
}

PgTestServer::PgTestServer() {
  const std::string bin = BinDir();
  if (bin.empty()) {
    error_ = "PostgreSQL is not installed (scripts/install-deps.sh installs postgresql)";
    return;
  }
  char pattern[] = "/tmp/solverd_pg.XXXXXX";
  if (::mkdtemp(pattern) == nullptr) {
    error_ = "mkdtemp failed";
    return;
  }
  dir_ = pattern;
  if (::geteuid() == 0) {
    const passwd* pg = ::getpwnam("postgres");
    if (pg == nullptr) {
      error_ = "running as root and there is no postgres user to run PostgreSQL as";
      return;
    }
    if (::chown(dir_.c_str(), pg->pw_uid, pg->pw_gid) != 0) {
      error_ = "cannot hand " + dir_ + " to the postgres user";
      return;
    }
    user_prefix_ = "runuser -u postgres -- ";
  }
  password_file_ = dir_ + "/password";
  std::ofstream(password_file_) << "test-secret-" << ::getpid() << "\n";
  ::chmod(password_file_.c_str(), 0644);
  port_ = FreeLoopbackPort();
  if (!Run(bin + "/initdb -D " + dir_ + "/data -U solverd --auth=scram-sha-256 --pwfile=" +
           password_file_ + " -E UTF8 --no-instructions > " + dir_ + "/initdb.log 2>&1")) {
    error_ = "initdb failed; see " + dir_ + "/initdb.log";
    return;
  }
  if (!Start()) error_ = "pg_ctl start failed; see " + dir_ + "/server.log";
}

PgTestServer::~PgTestServer() {
  if (dir_.empty()) return;
  Stop();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string PgTestServer::uri() const {
  return "postgres://solverd@127.0.0.1:" + std::to_string(port_) + "/postgres";
}

bool PgTestServer::Run(const std::string& command) {
  return std::system((user_prefix_ + command).c_str()) == 0;
}

bool PgTestServer::Start() {
  return Run(BinDir() + "/pg_ctl -D " + dir_ + "/data -l " + dir_ + "/server.log -w -t 30" +
             " -o \"-p " + std::to_string(port_) + " -k " + dir_ +
             " -c listen_addresses=127.0.0.1 -c fsync=off\" start > /dev/null 2>&1");
}

bool PgTestServer::Stop() {
  return Run(BinDir() + "/pg_ctl -D " + dir_ + "/data -m fast -w stop > /dev/null 2>&1");
}

}  // namespace solverd::testing
