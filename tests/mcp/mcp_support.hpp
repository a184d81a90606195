// Helpers for the mcp_http protocol tests: start the real ordinaut-server on a
// free loopback port with the test-only extensions, and speak raw HTTP/1.1
// over a socket (any Host/Origin header, chunked bodies, SSE read event by
// event while the stream is still open).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../server/server_process.hpp"  // ServerProcess, env_or_throw

namespace mcp_test {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using HeaderList = std::vector<std::pair<std::string, std::string>>;

using server_test::env_or_throw;

/// ordinaut-server with the test extensions (MCP_TEST_EXT_PATH), killed on
/// destruction (tests/server's ServerProcess, with the MCP tests' flags).
class Server {
 public:
  explicit Server(std::vector<std::string> args = {}, std::vector<std::pair<std::string, std::string>> env = {})
      : process_(env_or_throw("ORDINAUT_SERVER"), arguments(std::move(args)), environment(std::move(env))) {}

  int port() const { return process_.port(); }
  pid_t pid() const { return process_.pid(); }
  std::string log() const { return process_.log(); }

 private:
  static std::vector<std::string> arguments(std::vector<std::string> extra) {
    std::vector<std::string> args = {"--port", "0", "--ext-path", env_or_throw("MCP_TEST_EXT_PATH"),
                                     "--no-request-log", "--threads", "32"};
    for (auto& a : extra) args.push_back(std::move(a));
    return args;
  }
  // The conformance suite's fixed tool names; a test's own variables come after, so they may override it.
  static std::vector<std::pair<std::string, std::string>> environment(
      std::vector<std::pair<std::string, std::string>> env) {
    env.insert(env.begin(), {"ORDINAUT_MCP_SHORT_NAMES", "mcp_conformance"});
    return env;
  }

  server_test::ServerProcess process_;
};

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  ///< lower-case names
  std::string body;                            ///< de-chunked
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

/// One HTTP/1.1 exchange on its own connection; the body can be read while
/// it still streams (SSE).
class Connection {
 public:
  Connection(int port, const std::string& method, const std::string& path, const HeaderList& headers,
             const std::string& body = {}) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      throw std::runtime_error("connect failed");
    }
    std::string req = method + " " + path + " HTTP/1.1\r\n";
    bool has_host = false;
    for (const auto& [k, v] : headers) {
      if (strcasecmp(k.c_str(), "Host") == 0) has_host = true;
      req += k + ": " + v + "\r\n";
    }
    if (!has_host) req += "Host: 127.0.0.1:" + std::to_string(port) + "\r\n";
    req += "Connection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    std::size_t off = 0;
    while (off < req.size()) {
      ssize_t n = ::send(fd_, req.data() + off, req.size() - off, MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error("send failed");
      off += static_cast<std::size_t>(n);
    }
  }
  ~Connection() { close(); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  /// Waits for the status line and headers.
  const HttpResponse& head(std::chrono::milliseconds timeout = 10s) {
    const auto deadline = Clock::now() + timeout;
    while (!have_head_ && fill(deadline)) parse_head();
    if (!have_head_) throw std::runtime_error("no response head; got: " + raw_);
    return response_;
  }

  /// Reads the whole body (until the end of the chunked body, Content-Length or EOF).
  HttpResponse finish(std::chrono::milliseconds timeout = 10s) {
    const auto deadline = Clock::now() + timeout;
    head(timeout);
    decode();
    while (!complete_ && fill(deadline)) decode();
    response_.body = body_;
    return response_;
  }

  /// One SSE event with its fields, priming events (empty data) included.
  struct Event {
    std::string id;
    std::string data;
    std::string retry;
  };
  /// The next SSE event, priming events included (comments skipped); nullopt
  /// at the end of the stream or after `timeout`.
  std::optional<Event> next_raw_event(std::chrono::milliseconds timeout = 10s) {
    const auto deadline = Clock::now() + timeout;
    head(timeout);
    while (true) {
      decode();
      std::size_t end;
      while ((end = body_.find("\n\n", event_pos_)) != std::string::npos) {
        std::string block = body_.substr(event_pos_, end - event_pos_);
        event_pos_ = end + 2;
        Event event;
        bool field = false;
        std::istringstream lines(block);
        for (std::string line; std::getline(lines, line);) {
          if (line.rfind("id: ", 0) == 0) event.id = line.substr(4), field = true;
          if (line.rfind("retry: ", 0) == 0) event.retry = line.substr(7), field = true;
          if (line.rfind("data: ", 0) == 0 || line == "data:") {
            event.data += (event.data.empty() ? "" : "\n") + line.substr(std::min<std::size_t>(line.size(), 6));
            field = true;
          }
        }
        if (field) return event;
      }
      if (complete_ || !fill(deadline)) return std::nullopt;
    }
  }
  /// The data of the next SSE event with data (comments and priming events
  /// skipped); nullopt at the end of the stream or after `timeout`.
  std::optional<std::string> next_event(std::chrono::milliseconds timeout = 10s) {
    const auto deadline = Clock::now() + timeout;
    auto left = [&] {
      return std::max(0ms, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    };
    while (auto event = next_raw_event(left())) {
      if (!event->data.empty()) return event->data;
    }
    return std::nullopt;
  }
  bool complete() const { return complete_; }

 private:
  bool fill(Clock::time_point deadline) {
    if (eof_) return false;
    while (Clock::now() < deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(std::max<long>(left, 1))) <= 0) continue;
      char buf[8192];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        eof_ = true;
        if (have_head_ && !chunked_ && content_length_ < 0) complete_ = true;
        return false;
      }
      raw_.append(buf, static_cast<std::size_t>(n));
      return true;
    }
    return false;
  }

  void parse_head() {
    auto end = raw_.find("\r\n\r\n");
    if (end == std::string::npos) return;
    response_.status = std::atoi(raw_.c_str() + 9);
    std::istringstream head(raw_.substr(0, end));
    std::string line;
    std::getline(head, line);
    while (std::getline(head, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      auto value_at = line.find_first_not_of(' ', colon + 1);
      response_.headers[name] = value_at == std::string::npos ? "" : line.substr(value_at);
    }
    chunked_ = response_.header("transfer-encoding").find("chunked") != std::string::npos;
    if (!response_.header("content-length").empty()) content_length_ = std::stol(response_.header("content-length"));
    raw_.erase(0, end + 4);
    have_head_ = true;
  }

  void decode() {
    if (!have_head_) return;
    if (!chunked_) {
      body_ += raw_;
      raw_.clear();
      if (content_length_ >= 0 && static_cast<long>(body_.size()) >= content_length_) complete_ = true;
      return;
    }
    while (!complete_) {
      auto eol = raw_.find("\r\n");
      if (eol == std::string::npos) return;
      const std::size_t size = std::stoul(raw_.substr(0, eol), nullptr, 16);
      if (raw_.size() < eol + 2 + size + 2) return;
      body_ += raw_.substr(eol + 2, size);
      raw_.erase(0, eol + 2 + size + 2);
      if (size == 0) complete_ = true;
    }
  }

  int fd_ = -1;
  std::string raw_;
  std::string body_;
  std::size_t event_pos_ = 0;
  HttpResponse response_;
  bool have_head_ = false;
  bool chunked_ = false;
  long content_length_ = -1;
  bool eof_ = false;
  bool complete_ = false;
};

inline HttpResponse request(int port, const std::string& method, const std::string& path, const HeaderList& headers,
                            const std::string& body = {}) {
  Connection c(port, method, path, headers, body);
  return c.finish();
}

}  // namespace mcp_test
