// PgTestServer: a real PostgreSQL server for tests, made fresh in a temp
// directory by Debian's initdb and pg_ctl, on a loopback port, with
// password (scram-sha-256) authentication, and removed when destroyed.
// PostgreSQL refuses to run as root, so as root (CI) it runs as the
// `postgres` user the Debian package creates. Not thread-safe: one test
// thread drives it.
#ifndef SOLVERD_TESTS_SERVER_PG_TEST_SERVER_H_
#define SOLVERD_TESTS_SERVER_PG_TEST_SERVER_H_

#include <string>

namespace solverd::testing {

class PgTestServer {
 public:
  // initdb + start; on failure ok() is false and error() says why.
  PgTestServer();
  ~PgTestServer();
  PgTestServer(const PgTestServer&) = delete;
  PgTestServer& operator=(const PgTestServer&) = delete;

  // Where Debian keeps initdb and pg_ctl; empty when PostgreSQL is not
  // installed (tests then skip, naming scripts/install-deps.sh).
  static std::string BinDir();

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  // postgres://solverd@127.0.0.1:PORT/postgres (no password in it).
  std::string uri() const;
  // A file holding the password of uri()'s user.
  const std::string& password_file() const { return password_file_; }

  // pg_ctl stop (fast) and start again, on the same port and data.
  bool Stop();
  bool Start();

 private:
  // Runs `command` through the shell as the server's user; true on exit 0.
  bool Run(const std::string& command);

  std::string dir_, password_file_, error_, user_prefix_;
  int port_ = 0;
};

}  // namespace solverd::testing

#endif  // SOLVERD_TESTS_SERVER_PG_TEST_SERVER_H_
