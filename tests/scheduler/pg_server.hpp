// A real PostgreSQL 15 server for tests, started in a temporary folder and
// stopped when the object is destroyed.
//
// Why: the scheduler's PostgreSQL store (row locks, SKIP LOCKED, advisory
// locks) is only tested for real against a real server. The server runs as
// the `postgres` user when the test runs as root (PostgreSQL refuses root),
// listens on a free 127.0.0.1 port with its unix socket in the temp folder,
// and trusts local connections (test data only). RAII: the destructor stops it
// (SIGINT = fast shutdown, SIGKILL if it does not stop) and removes the
// folder, also when a REQUIRE throws; if the test process itself dies, the
// server gets SIGKILL through PR_SET_PDEATHSIG (which follows the creating
// thread: create the server on a thread that outlives it, e.g. the main
// thread or the test case's own). Construction failures throw
// std::runtime_error with the tail of the server's log, so a test that needs
// the server fails (never skips) and says why.
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace test_support {

class PgServer {
 public:
  static constexpr const char* kBinDir = "/usr/lib/postgresql/15/bin";

  /// initdb + postgres; throws std::runtime_error (with the log tail) on failure.
  PgServer() {
    try {
      start();
    } catch (...) {
      stop();
      throw;
    }
  }
  ~PgServer() { stop(); }
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::filesystem::path& folder() const { return dir_; }

  /// A libpq URI of `database` over TCP on the loopback port.
  std::string uri(std::string_view database = "postgres") const {
    return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + std::string(database);
  }

  /// Creates a fresh, empty database ("t1", "t2", ...) and returns its name.
  std::string create_database() {
    const std::string name = "t" + std::to_string(++databases_);
    query("postgres", "CREATE DATABASE " + name);  // the name is ours, not input
    return name;
  }

  /// Runs `sql` (no parameters: test-owned text) on `database`; the rows as
  /// text (NULL: ""). Throws with the server's message on failure.
  std::vector<std::vector<std::string>> query(std::string_view database, const std::string& sql) const {
    PGconn* conn = PQconnectdb(uri(database).c_str());
    if (PQstatus(conn) != CONNECTION_OK) {
      std::string message = PQerrorMessage(conn);
      PQfinish(conn);
      throw std::runtime_error("cannot connect to the test postgres: " + message);
    }
    PGresult* result = PQexec(conn, sql.c_str());
    const ExecStatusType status = PQresultStatus(result);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      std::string message = PQresultErrorMessage(result);
      PQclear(result);
      PQfinish(conn);
      throw std::runtime_error("test query failed: " + sql + ": " + message);
    }
    std::vector<std::vector<std::string>> rows;
    for (int r = 0; r < PQntuples(result); ++r) {
      auto& row = rows.emplace_back();
      for (int c = 0; c < PQnfields(result); ++c) row.emplace_back(PQgetvalue(result, r, c));
    }
    PQclear(result);
    PQfinish(conn);
    return rows;
  }

  /// The last `lines` lines of the server's log (for failure messages).
  std::string log_tail(std::size_t lines = 30) const {
    std::ifstream in(dir_ / "postgres.log");
    std::deque<std::string> tail;
    for (std::string line; std::getline(in, line);) {
      tail.push_back(line);
      if (tail.size() > lines) tail.pop_front();
    }
    std::string out;
    for (const auto& line : tail) out += line + "\n";
    return out;
  }

 private:
  void start() {
    std::string pattern = (std::filesystem::temp_directory_path() / "ordinaut-pg-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed for the test postgres");
    dir_ = pattern;
    if (::geteuid() == 0) {
      const passwd* pw = ::getpwnam("postgres");
      if (pw == nullptr) throw std::runtime_error("running as root but there is no `postgres` user to run postgres");
      uid_ = pw->pw_uid;
      gid_ = pw->pw_gid;
      if (::chown(dir_.c_str(), uid_, gid_) != 0) throw std::runtime_error("cannot chown the test postgres folder");
    }
    const std::string data = (dir_ / "data").string();
    const pid_t initdb = spawn({std::string(kBinDir) + "/initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E",
                                "UTF8", "--no-locale", "--no-sync", "--no-instructions"});
    int status = 0;
    ::waitpid(initdb, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail("initdb failed");
    // A port found free may be taken before postgres binds it: try a few.
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = free_port();
      pid_ = spawn({std::string(kBinDir) + "/postgres", "-D", data, "-p", std::to_string(port_), "-k", dir_.string(),
                    "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off", "-c",
                    "synchronous_commit=off", "-c", "max_connections=60", "-c", "shared_buffers=16MB"});
      if (wait_ready()) return;
      reap();
    }
    fail("postgres did not start");
  }

  // Polls until the server accepts connections or its process exits; the
  // deadline is generous (a loaded machine, sanitizers), not a timing claim.
  bool wait_ready() {
    const std::string conninfo = uri();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (std::chrono::steady_clock::now() < deadline) {
      if (PQping(conninfo.c_str()) == PQPING_OK) return true;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error(what + " (folder " + dir_.string() + "); log tail:\n" + log_tail());
  }

  static int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    int port = 0;
    if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    if (fd >= 0) ::close(fd);
    if (port == 0) throw std::runtime_error("no free loopback port for the test postgres");
    return port;
  }

  // fork + exec as the postgres user, output appended to postgres.log. The
  // child only makes async-signal-safe calls before exec.
  pid_t spawn(const std::vector<std::string>& args) const {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const std::string log = (dir_ / "postgres.log").string();
    const pid_t parent = ::getpid();
    const bool drop = ::geteuid() == 0;
    const pid_t child = ::fork();
    if (child < 0) throw std::runtime_error("fork failed for the test postgres");
    if (child == 0) {
      if (drop && (::setgroups(0, nullptr) != 0 || ::setgid(gid_) != 0 || ::setuid(uid_) != 0)) ::_exit(126);
      // After setuid: a credential change clears the parent-death signal.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(125);
      const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      const int in = ::open("/dev/null", O_RDONLY);
      if (out < 0 || in < 0) ::_exit(124);
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(out, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    return child;
  }

  void reap() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  void stop() noexcept {
    if (pid_ > 0) {
      ::kill(pid_, SIGINT);  // fast shutdown: ends sessions, exits cleanly
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (std::chrono::steady_clock::now() < deadline) {
        if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
          pid_ = -1;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      reap();
    }
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  std::filesystem::path dir_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  int port_ = 0;
  pid_t pid_ = -1;
  std::atomic<int> databases_{0};
};

}  // namespace test_support
