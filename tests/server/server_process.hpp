// Helpers for the server tests: start the real ordinaut-server binary on a
// free loopback port, talk raw HTTP over a socket, read its log.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace server_test {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

inline std::string env_or_throw(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') throw std::runtime_error(std::string(name) + " is not set (run through meson test)");
  return v;
}

inline std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct ExitStatus {
  bool exited = false;  ///< false: killed by a signal or still running at the deadline
  int code = -1;
  int signal = 0;
};

/// Runs `binary` with `args`, extra environment, stdout and stderr captured in
/// files; waits up to `timeout` for it to end.
inline ExitStatus run_to_end(const std::string& binary, const std::vector<std::string>& args,
                             const std::filesystem::path& out_file, const std::filesystem::path& err_file,
                             std::chrono::milliseconds timeout = 10s) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int out = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(out, 1);
    ::dup2(err, 2);
    std::vector<char*> argv{const_cast<char*>(binary.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  ExitStatus st;
  const auto deadline = Clock::now() + timeout;
  int status = 0;
  while (Clock::now() < deadline) {
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      st.exited = WIFEXITED(status);
      st.code = st.exited ? WEXITSTATUS(status) : -1;
      st.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
      return st;
    }
    std::this_thread::sleep_for(5ms);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return st;
}

/// A running ordinaut-server (or another server that prints
/// "listening on http://HOST:PORT" on stdout).
class ServerProcess {
 public:
  ServerProcess(std::string binary, std::vector<std::string> args,
                std::vector<std::pair<std::string, std::string>> env = {},
                std::filesystem::path log_file = {})
      : log_file_(log_file.empty() ? temp_log() : std::move(log_file)) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    pid_ = ::fork();
    if (pid_ == 0) {
      int err = ::open(log_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(pipe_fds[1], 1);
      ::dup2(err, 2);
      for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
      std::vector<char*> argv{const_cast<char*>(binary.c_str())};
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(binary.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(pipe_fds[1]);
    stdout_fd_ = pipe_fds[0];
    // Wait for the "listening" line.
    std::string out;
    const auto deadline = Clock::now() + 10s;
    while (Clock::now() < deadline) {
      pollfd p{stdout_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) > 0) {
        char buf[256];
        ssize_t n = ::read(stdout_fd_, buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, static_cast<size_t>(n));
        auto at = out.find("listening on http://");
        if (at != std::string::npos && out.find('\n', at) != std::string::npos) {
          auto colon = out.rfind(':', out.find('\n', at));
          port_ = std::atoi(out.c_str() + colon + 1);
          started_ = Clock::now();
          return;
        }
      }
    }
    kill(SIGKILL);
    throw std::runtime_error("server did not start; stdout: " + out + "\nstderr: " + log());
  }
  // Ends the server. A sanitizer report in its log (sanitizer builds) fails
  // the whole test program; otherwise the log is removed.
  ~ServerProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    if (stdout_fd_ >= 0) ::close(stdout_fd_);
    const std::string text = read_text(log_file_);
    for (const char* marker : {"AddressSanitizer", "LeakSanitizer", "ThreadSanitizer", "runtime error:"}) {
      if (text.find(marker) != std::string::npos) {
        std::fprintf(stderr, "sanitizer report in the server log %s:\n%s\n", log_file_.c_str(), text.c_str());
        std::abort();
      }
    }
    std::error_code ec;
    std::filesystem::remove(log_file_, ec);
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  /// The server's stderr so far. It buffers info lines for up to 20 ms, so
  /// this waits 100 ms first.
  std::string log() const {
    std::this_thread::sleep_for(100ms);
    return read_text(log_file_);
  }
  /// Log lines containing `needle`.
  std::vector<std::string> log_lines(const std::string& needle) const {
    std::vector<std::string> lines;
    std::istringstream in(log());
    for (std::string line; std::getline(in, line);) {
      if (line.find(needle) != std::string::npos) lines.push_back(line);
    }
    return lines;
  }

  void kill(int sig) const {
    if (pid_ > 0) ::kill(pid_, sig);
  }
  /// Waits for the process to end; nullopt when it is still running at the deadline.
  std::optional<ExitStatus> wait(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        ExitStatus st;
        st.exited = WIFEXITED(status);
        st.code = st.exited ? WEXITSTATUS(status) : -1;
        st.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
        return st;
      }
      std::this_thread::sleep_for(5ms);
    }
    return std::nullopt;
  }

 private:
  static std::filesystem::path temp_log() {
    static int counter = 0;
    return std::filesystem::temp_directory_path() /
           ("ordinaut-server-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".log");
  }

  std::filesystem::path log_file_;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  int port_ = -1;
  Clock::time_point started_;
};

/// A plain TCP connection to 127.0.0.1:port for raw HTTP.
class RawConnection {
 public:
  explicit RawConnection(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~RawConnection() { close(); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return fd_ >= 0; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool send(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  /// Reads what arrives within `timeout` (stops early at EOF or when `until` is seen).
  std::string receive(std::chrono::milliseconds timeout, const std::string& until = {}) {
    const auto deadline = Clock::now() + timeout;
    std::string got;
    while (Clock::now() < deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(std::max<long>(left, 1))) <= 0) continue;
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        eof_ = true;
        break;
      }
      got.append(buf, static_cast<size_t>(n));
      if (!until.empty() && got.find(until) != std::string::npos) break;
    }
    return got;
  }
  bool eof() const { return eof_; }

 private:
  int fd_ = -1;
  bool eof_ = false;
};

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

/// Parses one response with a Content-Length body (or a body that ends at EOF).
inline RawResponse parse_response(const std::string& text) {
  RawResponse r;
  auto end = text.find("\r\n\r\n");
  if (text.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos) return r;
  r.status = std::atoi(text.c_str() + 9);
  std::istringstream head(text.substr(0, end));
  std::string line;
  std::getline(head, line);
  while (std::getline(head, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
  }
  r.body = text.substr(end + 4);
  if (auto it = r.headers.find("content-length"); it != r.headers.end()) {
    r.body.resize(std::min<size_t>(r.body.size(), std::stoul(it->second)));
  }
  return r;
}

/// Sends `method target` exactly as written (no encoding, no normalisation)
/// on a new connection and returns the parsed response.
inline RawResponse raw_request(int port, const std::string& method, const std::string& target,
                               const std::string& extra_headers = {}, const std::string& body = {}) {
  RawConnection c(port);
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + extra_headers;
  if (!body.empty()) req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  c.send(req);
  return parse_response(c.receive(5s));
}

/// Environment for a server whose RSS a test measures: under AddressSanitizer
/// freed memory waits in a quarantine (256 MiB by default) before reuse, which
/// would look like growth; keep it small. No effect on other builds.
inline std::pair<std::string, std::string> small_asan_quarantine() {
  const char* options = std::getenv("ASAN_OPTIONS");
  return {"ASAN_OPTIONS", std::string(options != nullptr ? options : "") +
                              ":quarantine_size_mb=4:thread_local_quarantine_size_kb=64"};
}

/// Resident set size of a process in KiB (VmRSS), 0 when unknown. Memory
/// tests compare it before and after a load: bounded growth, never timing.
inline std::size_t rss_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
  }
  return 0;
}

}  // namespace server_test
