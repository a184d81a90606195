// A real redis-server for tests: started on a free loopback port in a temporary
// folder, killed (and the folder removed) by the destructor.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <hiredis/hiredis.h>

namespace ordinaut_test {

/// A reply flattened for assertions.
struct RedisValue {
  int type = 0;  // REDIS_REPLY_*
  long long integer = 0;
  std::string str;
  std::vector<RedisValue> elements;
  bool is_nil() const { return type == REDIS_REPLY_NIL; }
};

inline RedisValue flatten(const redisReply* r) {
  RedisValue v;
  if (r == nullptr) return v;
  v.type = r->type;
  v.integer = r->integer;
  if (r->str != nullptr) v.str.assign(r->str, r->len);
  for (std::size_t i = 0; i < r->elements; ++i) v.elements.push_back(flatten(r->element[i]));
  return v;
}

struct RedisServerOptions {
  bool durable = false;  // appendonly yes, appendfsync always
  std::string password;  // requirepass when not empty
};

class RedisServer {
 public:
  using Options = RedisServerOptions;

  explicit RedisServer(Options options = {}) : options_(std::move(options)) {
    char dir[] = "/tmp/ordinaut-redis-XXXXXX";
    if (::mkdtemp(dir) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = dir;
    for (int attempt = 0; attempt < 10; ++attempt) {
      port_ = free_port();
      if (launch()) return;
    }
    throw std::runtime_error("could not start redis-server (see " + (dir_ / "redis.log").string() + ")");
  }

  ~RedisServer() {
    kill();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  std::string url() const {
    std::string auth = options_.password.empty() ? "" : ":" + options_.password + "@";
    return "redis://" + auth + "127.0.0.1:" + std::to_string(port_) + "/0";
  }

  /// SIGKILL, like a crash: only what the AOF holds survives.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = 0;
  }

  /// Sends `sig` to the server, e.g. SIGSTOP and SIGCONT to freeze it.
  void signal(int sig) const {
    if (pid_ > 0) ::kill(pid_, sig);
  }

  /// Starts again on the same port and folder.
  void restart() {
    kill();
    for (int attempt = 0; attempt < 50; ++attempt) {
      if (launch()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    throw std::runtime_error("could not restart redis-server on port " + std::to_string(port_));
  }

  /// Runs one command on a fresh connection.
  RedisValue command(const std::vector<std::string>& args) const {
    redisContext* c = connect();
    if (c == nullptr) throw std::runtime_error("cannot connect to the test redis-server");
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* reply = static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
    RedisValue v = flatten(reply);
    if (reply != nullptr) freeReplyObject(reply);
    redisFree(c);
    if (reply == nullptr) throw std::runtime_error("test redis command failed");
    return v;
  }

 private:
  static int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
  }

  redisContext* connect() const {
    timeval tv{1, 0};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
    if (c == nullptr || c->err) {
      if (c != nullptr) redisFree(c);
      return nullptr;
    }
    if (!options_.password.empty()) {
      auto* r = static_cast<redisReply*>(redisCommand(c, "AUTH %s", options_.password.c_str()));
      if (r != nullptr) freeReplyObject(r);
    }
    return c;
  }

  bool launch() {
    std::vector<std::string> args = {"redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                     "--dir", dir_.string(), "--save", "", "--daemonize", "no",
                                     "--logfile", (dir_ / "redis.log").string()};
    if (options_.durable) {
      args.insert(args.end(), {"--appendonly", "yes", "--appendfsync", "always"});
    } else {
      args.insert(args.end(), {"--appendonly", "no"});
    }
    if (!options_.password.empty()) args.insert(args.end(), {"--requirepass", options_.password});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      // The server dies with the test, even when the test crashes.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);
      int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, 0);
      ::dup2(null, 1);
      ::execvp("redis-server", argv.data());
      ::_exit(127);
    }
    pid_ = pid;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {  // exited: port taken?
        pid_ = 0;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
          throw std::runtime_error("redis-server is not installed (apt-get install redis-server)");
        }
        return false;
      }
      if (redisContext* c = connect()) {
        auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
        const bool ok = r != nullptr && r->type == REDIS_REPLY_STATUS;
        if (r != nullptr) freeReplyObject(r);
        redisFree(c);
        if (ok) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill();
    return false;
  }

  Options options_;
  std::filesystem::path dir_;
  int port_ = 0;
  pid_t pid_ = 0;
};

}  // namespace ordinaut_test
