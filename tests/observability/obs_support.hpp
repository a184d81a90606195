// Shared by the observability and events_demo tests: starting the real server
// with the listener example, reading metrics, running promtool, reading SSE.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <httplib.h>

#include <ordinaut/json.hpp>

#include "../events/redis_server.hpp"  // RedisServer
#include "server_process.hpp"  // tests/server: ServerProcess, RawConnection

namespace obs_test {

using namespace std::chrono_literals;
using server_test::env_or_throw;
using server_test::ServerProcess;

inline std::string server_binary() { return env_or_throw("ORDINAUT_SERVER_BIN"); }
inline std::string listener_dir() { return env_or_throw("ORDINAUT_LISTENER_DIR"); }

/// ordinaut-server on a free loopback port, with examples/listener on its path.
inline std::unique_ptr<ServerProcess> start_server(std::vector<std::string> extra_args = {},
                                                   std::vector<std::pair<std::string, std::string>> extra_env = {}) {
  std::vector<std::string> args = {"--port", "0", "--no-request-log", "--ext-path", listener_dir()};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<std::pair<std::string, std::string>> env = {{"ORDINAUT_EXT_PATHS", ""}, {"REDIS_URL", ""}};
  env.insert(env.end(), extra_env.begin(), extra_env.end());
  return std::make_unique<ServerProcess>(server_binary(), args, env);
}

inline std::unique_ptr<httplib::Client> client(int port) {
  auto c = std::make_unique<httplib::Client>("127.0.0.1", port);
  c->set_connection_timeout(5, 0);
  c->set_read_timeout(15, 0);
  c->set_keep_alive(true);
  c->set_url_encode(false);
  return c;
}

inline ordinaut::Json parse_json(const std::string& text) {
  auto doc = ordinaut::json::parse(text);
  REQUIRE_MESSAGE(doc.ok(), "not JSON: " << text);
  return std::move(doc).value();
}

/// One sample line split into its series (name + labels) and value.
struct Sample {
  std::string series;
  double value = 0;
};

inline std::vector<Sample> samples(const std::string& body) {
  std::vector<Sample> out;
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    auto space = line.rfind(' ');
    out.push_back({line.substr(0, space), std::strtod(line.c_str() + space + 1, nullptr)});
  }
  return out;
}

/// The series (name and labels, values stripped) of an exposition.
inline std::set<std::string> series_set(const std::string& body) {
  std::set<std::string> out;
  for (const auto& s : samples(body)) out.insert(s.series);
  return out;
}

/// Value of one series, or NaN-free -1 when absent.
inline double value_of(const std::string& body, const std::string& series) {
  for (const auto& s : samples(body)) {
    if (s.series == series) return s.value;
  }
  return -1;
}

inline std::string scrape(int port) {
  auto res = client(port)->Get("/ext/observability/metrics");
  REQUIRE(res);
  REQUIRE(res->status == 200);
  return res->body;
}

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

/// Runs a shell command with `input` on its standard input.
inline CommandResult run_with_input(const std::string& command, const std::string& input) {
  auto dir = std::filesystem::temp_directory_path();
  auto in_file = dir / ("obs-in-" + std::to_string(::getpid()) + ".txt");
  auto out_file = dir / ("obs-out-" + std::to_string(::getpid()) + ".txt");
  std::ofstream(in_file, std::ios::binary) << input;
  std::string full = command + " < '" + in_file.string() + "' > '" + out_file.string() + "' 2>&1";
  int status = std::system(full.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.output = server_test::read_text(out_file);
  std::filesystem::remove(in_file);
  std::filesystem::remove(out_file);
  return r;
}

/// One Server-Sent Event as read off the wire.
struct SseEvent {
  std::string id;
  std::string event;
  std::string data;
};

/// Consumes the complete blocks ("...\n\n") at the front of `buffer`: events
/// go to `events`, comment lines (": ...") to `comments`.
inline void parse_sse(std::string& buffer, std::vector<SseEvent>& events, std::vector<std::string>& comments) {
  std::size_t end;
  while ((end = buffer.find("\n\n")) != std::string::npos) {
    std::istringstream in(buffer.substr(0, end));
    buffer.erase(0, end + 2);
    SseEvent e;
    bool any = false;
    for (std::string line; std::getline(in, line);) {
      if (line.rfind(":", 0) == 0) {
        comments.push_back(line);
      } else if (line.rfind("id: ", 0) == 0) {
        e.id = line.substr(4);
        any = true;
      } else if (line.rfind("event: ", 0) == 0) {
        e.event = line.substr(7);
        any = true;
      } else if (line.rfind("data: ", 0) == 0) {
        if (!e.data.empty()) e.data += '\n';
        e.data += line.substr(6);
        any = true;
      }
    }
    if (any) events.push_back(std::move(e));
  }
}

/// Reads a text/event-stream in a thread with cpp-httplib's client until
/// stop() (the receiver then returns false: the client leaves).
class SseReader {
 public:
  SseReader(int port, std::string path, httplib::Headers headers = {})
      : port_(port), path_(std::move(path)), headers_(std::move(headers)) {
    thread_ = std::thread([this] { run(); });
  }
  ~SseReader() { stop(); }
  SseReader(const SseReader&) = delete;
  SseReader& operator=(const SseReader&) = delete;

  /// Waits until `predicate()` holds over the events read so far.
  bool wait_for(const std::function<bool(const std::vector<SseEvent>&, int comments)>& predicate,
                std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return predicate(events_, comments_) || finished_; }) &&
           predicate(events_, comments_);
  }
  bool wait_events(std::size_t n, std::chrono::milliseconds timeout = 10s) {
    return wait_for([n](const auto& e, int) { return e.size() >= n; }, timeout);
  }
  /// True once the stream has started (the first comment line arrived).
  bool wait_open(std::chrono::milliseconds timeout = 10s) {
    return wait_for([](const auto&, int comments) { return comments > 0; }, timeout);
  }
  std::vector<SseEvent> events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }
  int comments() const {
    std::lock_guard lock(mutex_);
    return comments_;
  }
  std::vector<std::string> comment_lines() const {
    std::lock_guard lock(mutex_);
    return comment_lines_;
  }
  int status() const { return status_.load(); }
  std::string content_type() const {
    std::lock_guard lock(mutex_);
    return content_type_;
  }
  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30, 0);
    auto res = c.Get(
        path_, headers_,
        [this](const httplib::Response& r) {
          status_.store(r.status);
          std::lock_guard lock(mutex_);
          content_type_ = r.get_header_value("Content-Type");
          return true;
        },
        [this](const char* data, std::size_t size) {
          feed(std::string_view(data, size));
          return !stop_.load();
        });
    (void)res;
    std::lock_guard lock(mutex_);
    finished_ = true;
    changed_.notify_all();
  }

  void feed(std::string_view bytes) {
    std::lock_guard lock(mutex_);
    buffer_.append(bytes);
    parse_sse(buffer_, events_, comment_lines_);
    comments_ = static_cast<int>(comment_lines_.size());
    changed_.notify_all();
  }

  int port_;
  std::string path_;
  httplib::Headers headers_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> status_{0};
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::string buffer_;
  std::string content_type_;
  std::vector<SseEvent> events_;
  std::vector<std::string> comment_lines_;
  int comments_ = 0;
  bool finished_ = false;
};

/// Polls `fn` until it returns true or `timeout` passes.
inline bool eventually(const std::function<bool()>& fn, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (fn()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return fn();
}

// redis-server on a free loopback port, without persistence, for one test:
// the event bus tests' own (tests/events/redis_server.hpp).
using RedisServer = ordinaut_test::RedisServer;

}  // namespace obs_test
