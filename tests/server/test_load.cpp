// Hostile load on the connection layer: 10,000 idle keep-alive connections,
// 1,000 open SSE streams and 200 slow-drip clients at once, while /health and
// an extension route keep answering. Checks counts and states only (waits for
// a state with a generous deadline), never durations.
#include <sys/resource.h>

#include <dirent.h>

#include <memory>
#include <string>
#include <vector>

#include "common.hpp"

using namespace server_test;

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

constexpr int kIdle = 10000;
// Under sanitizers every stream thread costs far more memory and time.
constexpr int kStreams = kSanitized ? 200 : 1000;
constexpr int kSlow = 200;

std::size_t open_files(pid_t pid) {
  std::size_t n = 0;
  DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (d == nullptr) return 0;
  while (::readdir(d) != nullptr) ++n;
  ::closedir(d);
  return n >= 2 ? n - 2 : 0;
}

double rss_mib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  }
  return -1;
}

template <typename F>
bool wait_for(F&& done, std::chrono::seconds limit = 30s) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return done();
}

// Opens `n` connections to `port`, each sending `request`.
std::vector<std::unique_ptr<RawConnection>> open_all(int port, int n, const std::string& request) {
  std::vector<std::unique_ptr<RawConnection>> all;
  all.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    all.push_back(std::make_unique<RawConnection>(port));
    REQUIRE(all.back()->connected());
    REQUIRE(all.back()->send(request));
  }
  return all;
}

void check_serving(int port) {
  auto health = raw_request(port, "GET", "/health");
  CHECK(health.status == 200);
  auto hello = raw_request(port, "GET", "/ext/srvtest/hello");
  CHECK(hello.status == 200);
  CHECK(hello.body == "hello");
}

}  // namespace

TEST_CASE("10,000 idle connections, streams and slow-drip clients do not stop /health") {
  rlimit lim{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &lim) == 0);
  lim.rlim_cur = lim.rlim_max;
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &lim) == 0);
  const rlim_t needed = kIdle + kStreams + kSlow + 100;
  if (lim.rlim_cur < needed) {
    MESSAGE("RLIMIT_NOFILE hard limit " << lim.rlim_cur << " < " << needed << ": test skipped");
    return;
  }
  // Default thread count (16): far fewer threads than connections.
  // Timeouts far beyond the test's own deadlines: a slow machine must not
  // close what the test counts.
  auto server = start_server({"--stream-keepalive", "0", "--no-request-log", "--keep-alive-timeout", "3600",
                              "--header-timeout", "3600", "--read-timeout", "3600"});
  const int port = server->port();
  check_serving(port);
  const std::size_t baseline_files = open_files(server->pid());

  // Idle keep-alive connections: each made one request and stays open.
  const std::string health = "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";
  auto idle = open_all(port, kIdle, health);
  int answered = 0;
  for (auto& c : idle) answered += c->receive(30s, "}").find("HTTP/1.1 200") == 0 ? 1 : 0;
  CHECK(answered == kIdle);
  check_serving(port);

  // Streams: each gets its first event and then waits for its client to leave.
  auto streams = open_all(port, kStreams, "GET /ext/srvtest/stream?mode=parked HTTP/1.1\r\nHost: localhost\r\n\r\n");
  int ready = 0;
  for (auto& c : streams) ready += c->receive(30s, "event: ready").find("event: ready") != std::string::npos ? 1 : 0;
  CHECK(ready == kStreams);

  // Slow-drip clients: a head that never ends, one byte at a time.
  auto slow = open_all(port, kSlow, "GET /ext/srvtest/mark HTTP/1.1\r\nHost: localhost\r\nX-Drip: ");
  for (int round = 0; round < 3; ++round) {
    for (auto& c : slow) c->send("x");
    check_serving(port);
  }

  // Everything is open at once, on the server's side too.
  // (The baseline may include a connection of check_serving() still closing.)
  const std::size_t expected = kIdle + kStreams + kSlow;
  CHECK(wait_for([&] { return open_files(server->pid()) >= expected; }));
  auto streams_state = parse_json(client(port)->Get("/ext/srvtest/streams")->body);
  CHECK(streams_state["started"].GetInt() == kStreams);
  CHECK(streams_state["ended"].GetInt() == 0);
  check_serving(port);
  const double rss = rss_mib(server->pid());
  MESSAGE("server: " << open_files(server->pid()) << " open files, RSS " << rss << " MiB");
  if (!kSanitized) CHECK(rss <= 64.0);
  // The idle connections are still open and still serve.
  int again = 0;
  for (std::size_t i = 0; i < idle.size(); i += 100) {
    idle[i]->send(health);
    again += idle[i]->receive(30s, "}").find("HTTP/1.1 200") == 0 ? 1 : 0;
  }
  CHECK(again == kIdle / 100);

  // Clients leave: the server lets go of every connection and stream.
  idle.clear();
  streams.clear();
  slow.clear();
  CHECK(wait_for([&] { return open_files(server->pid()) <= baseline_files + 2; }));
  CHECK(wait_for([&] {
    auto res = client(port)->Get("/ext/srvtest/streams");
    return res && parse_json(res->body)["ended"].GetInt() == kStreams;
  }));
  check_serving(port);
  auto marks = parse_json(client(port)->Get("/ext/srvtest/marks")->body);
  CHECK(marks["marks"].GetInt() == 0);  // no slow-drip head ever completed
}

TEST_CASE("a stream whose client stops reading ends after --write-timeout; memory stays bounded") {
  auto server = start_server({"--write-timeout", "1", "--no-request-log"});
  const int port = server->port();
  RawConnection reader(port);
  REQUIRE(reader.send("GET /ext/srvtest/stream?mode=flood HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  REQUIRE(reader.receive(30s, "event: flood").find("event: flood") != std::string::npos);
  // The client reads nothing more: the producer's writes block, then fail.
  CHECK(wait_for([&] {
    auto res = client(port)->Get("/ext/srvtest/streams");
    return res && parse_json(res->body)["ended"].GetInt() == 1;
  }));
  auto doc = parse_json(client(port)->Get("/ext/srvtest/streams")->body);
  CHECK(str(doc, "last_reason") == "write");
  if (!kSanitized) CHECK(rss_mib(server->pid()) <= 64.0);  // the socket buffers bound what was queued
  check_serving(port);
}
