// ordinaut-server's command line, streamed responses (keep-alive comments,
// disconnects) and graceful shutdown on SIGTERM/SIGINT.
#include <thread>

#include "../support/support.hpp"
#include "common.hpp"

using namespace server_test;
namespace fs = std::filesystem;

namespace {

struct Run {
  ExitStatus status;
  std::string out, err;
};

Run run_server(const std::vector<std::string>& args) {
  test_support::TempDir tmp;
  Run r;
  r.status = run_to_end(server_binary(), args, tmp.path() / "out", tmp.path() / "err", 10s);
  r.out = read_text(tmp.path() / "out");
  r.err = read_text(tmp.path() / "err");
  return r;
}

// Polls srvtest's /streams until `ended` reaches `want`; returns the document.
ordinaut::Json wait_streams_ended(int port, int want, std::chrono::milliseconds bound) {
  const auto deadline = Clock::now() + bound;
  for (;;) {
    auto res = client(port)->Get("/ext/srvtest/streams");
    REQUIRE(res);
    auto doc = parse_json(res->body);
    if (doc["ended"].GetInt() >= want || Clock::now() > deadline) return doc;
    std::this_thread::sleep_for(10ms);
  }
}

}  // namespace

TEST_CASE("--help and --version exit 0") {
  auto help = run_server({"--help"});
  CHECK(help.status.exited);
  CHECK(help.status.code == 0);
  for (const char* flag : {"--host", "--port", "--ext-path", "--builtin-dir", "--require-scopes", "--log-format",
                           "--no-request-log", "--threads", "--max-body", "--shutdown-timeout", "--stream-keepalive",
                           "--lifecycle-timeout", "--redis-url"}) {
    CAPTURE(flag);
    CHECK(help.out.find(flag) != std::string::npos);
  }
  auto version = run_server({"--version"});
  CHECK(version.status.code == 0);
  CHECK(version.out.find("ordinaut-server 0.") == 0);
}

TEST_CASE("bad flag values exit 2 with a message naming the flag") {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--port", "70000"}, "--port"},
      {{"--port", "http"}, "--port"},
      {{"--port"}, "--port needs a value"},
      {{"--threads", "0"}, "--threads"},
      {{"--threads=-3"}, "--threads"},
      {{"--max-body", "-1"}, "--max-body"},
      {{"--max-body", "12kb"}, "--max-body"},
      {{"--log-format", "xml"}, "--log-format is json or text"},
      {{"--shutdown-timeout", "soon"}, "--shutdown-timeout"},
      {{"--stream-keepalive", "-1"}, "--stream-keepalive"},
      {{"--lifecycle-timeout", "5s"}, "--lifecycle-timeout needs a number of seconds"},
      {{"--lifecycle-timeout", "-0.5"}, "--lifecycle-timeout"},
      {{"--read-timeout", "0"}, "--read-timeout"},
      {{"--builtin-dir", "/nonexistent/ordinaut"}, "--builtin-dir /nonexistent/ordinaut: not a folder"},
      {{"--require-scopes=yes"}, "--require-scopes takes no value"},
      {{"--frobnicate"}, "unknown option --frobnicate"},
  };
  for (const auto& [args, message] : cases) {
    CAPTURE(args[0]);
    auto r = run_server(args);
    CHECK(r.status.exited);
    CHECK(r.status.code == 2);
    CHECK(r.err.find(message) != std::string::npos);
    CHECK(r.out.find("listening") == std::string::npos);
  }
  // A bad environment value is refused as clearly.
  test_support::TempDir tmp;
  ::setenv("ORDINAUT_REQUIRE_SCOPES", "perhaps", 1);
  auto r = run_to_end(server_binary(), {"--port", "0"}, tmp.path() / "out", tmp.path() / "err", 10s);
  ::unsetenv("ORDINAUT_REQUIRE_SCOPES");
  CHECK(r.code == 2);
  CHECK(read_text(tmp.path() / "err").find("ORDINAUT_REQUIRE_SCOPES") != std::string::npos);
}

TEST_CASE("the built-ins are found in the build tree with no flag; --host and --port are honoured") {
  auto server = std::make_unique<ServerProcess>(server_binary(), std::vector<std::string>{"--host", "127.0.0.1",
                                                                                          "--port", "0"});
  auto status = parse_json(client(server->port())->Get("/ext/status")->body);
  for (const char* id : {"observability", "webui", "mcp_http", "events_demo"}) {
    CAPTURE(id);
    REQUIRE(status["extensions"].HasMember(id));
    CHECK(str(status["extensions"][id], "source") == "builtin");
  }
  auto health = client(server->port())->Get("/ext/webui/health");
  REQUIRE(health);
  CHECK(health->status == 200);
}

TEST_CASE("--ext-path adds to ORDINAUT_EXT_PATHS, searched after it") {
  auto server = std::make_unique<ServerProcess>(
      server_binary(), std::vector<std::string>{"--port", "0", "--ext-path", srvtest_dir()},
      std::vector<std::pair<std::string, std::string>>{{"ORDINAUT_EXT_PATHS", srvtest_dir()}});
  auto status = parse_json(client(server->port())->Get("/ext/status")->body);
  CHECK(str(status["extensions"]["srvtest"], "source") == "path");
  std::vector<std::string> sources;
  for (const auto& s : status["discovery_sources"].GetArray()) sources.emplace_back(s.GetString());
  REQUIRE(sources.size() >= 3);
  CHECK(sources[0].rfind("builtin:", 0) == 0);
  CHECK(sources[1] == "path:" + srvtest_dir());  // from the environment
  CHECK(sources[2] == "path:" + srvtest_dir());  // from the flag: same id, refused as a duplicate
  REQUIRE(status["discovery_errors"].Size() == 1);
  CHECK(str(status["discovery_errors"][0], "error").find("duplicate extension id 'srvtest'") != std::string::npos);
}

TEST_CASE("SSE: keep-alive comments while the producer is silent; a disconnect ends the stream and frees its thread") {
  auto server = start_server({"--threads", "2", "--stream-keepalive", "0.2"});
  REQUIRE(client(server->port())->Get("/ext/srvtest/hello"));
  {
    RawConnection sse(server->port());
    sse.send("GET /ext/srvtest/stream?mode=silent HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n");
    std::string head = sse.receive(5s, "event: ready");
    CHECK(head.find("HTTP/1.1 200") == 0);
    CHECK(head.find("Content-Type: text/event-stream") != std::string::npos);
    CHECK(head.find("Transfer-Encoding: chunked") != std::string::npos);
    std::string quiet = sse.receive(900ms);
    std::size_t comments = 0;
    for (auto at = quiet.find(": keepalive\n\n"); at != std::string::npos; at = quiet.find(": keepalive\n\n", at + 1)) {
      ++comments;
    }
    CHECK(comments >= 2);
    CHECK(comments <= 6);
    sse.close();
  }
  const auto closed_at = Clock::now();
  auto doc = wait_streams_ended(server->port(), 1, 3s);
  const auto noticed = Clock::now() - closed_at;
  CHECK(doc["ended"].GetInt() == 1);
  CHECK(str(doc, "last_reason") == "is_open");
  CHECK(noticed < 1s);

  // A chatty producer learns it through is_open() or a failed write.
  {
    RawConnection sse(server->port());
    sse.send("GET /ext/srvtest/stream?mode=chatty HTTP/1.1\r\nHost: localhost\r\n\r\n");
    CHECK(sse.receive(5s, "event: tick").find("event: tick") != std::string::npos);
  }
  doc = wait_streams_ended(server->port(), 2, 3s);
  CHECK(doc["ended"].GetInt() == 2);
  CHECK((str(doc, "last_reason") == "is_open" || str(doc, "last_reason") == "write"));

  // Both workers are free again: two slow requests run side by side.
  const auto t0 = Clock::now();
  std::thread a([&] { CHECK(client(server->port())->Get("/ext/srvtest/slow?ms=300")->status == 200); });
  std::thread b([&] { CHECK(client(server->port())->Get("/ext/srvtest/slow?ms=300")->status == 200); });
  a.join();
  b.join();
  CHECK(Clock::now() - t0 < 580ms);
}

TEST_CASE("SSE: with keep-alive comments off, a silent producer still learns of the disconnect at once") {
  // Nothing is written, so no failed write can reveal it: the socket watch must.
  auto server = start_server({"--threads", "2", "--stream-keepalive", "0"});
  REQUIRE(client(server->port())->Get("/ext/srvtest/hello"));
  {
    RawConnection sse(server->port());
    sse.send("GET /ext/srvtest/stream?mode=silent HTTP/1.1\r\nHost: localhost\r\n\r\n");
    REQUIRE(sse.receive(5s, "event: ready").find("event: ready") != std::string::npos);
    CHECK(sse.receive(500ms).empty());  // no comments
  }
  const auto closed_at = Clock::now();
  auto doc = wait_streams_ended(server->port(), 1, 3s);
  CHECK(doc["ended"].GetInt() == 1);
  CHECK(str(doc, "last_reason") == "is_open");
  CHECK(Clock::now() - closed_at < 500ms);
}

TEST_CASE("SSE: a finite stream is delivered whole, without comments when --stream-keepalive 0") {
  auto server = start_server({"--stream-keepalive", "0"});
  auto res = client(server->port())->Get("/ext/srvtest/stream?mode=finite");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->get_header_value("Cache-Control") == "no-cache");
  CHECK(res->body ==
        "event: ready\ndata: {\"ready\":true}\n\n"
        "id: 0\nevent: tick\ndata: {\"n\":0}\n\n"
        "id: 1\nevent: tick\ndata: {\"n\":1}\n\n");
  auto doc = wait_streams_ended(server->port(), 1, 2s);
  CHECK(str(doc, "last_reason") == "done");
}

TEST_CASE("SIGTERM: stop accepting, finish in-flight requests, run on_shutdown, exit 0") {
  test_support::TempDir tmp;
  const fs::path marker = tmp.path() / "shutdown.txt";
  auto server = start_server({"--shutdown-timeout", "10"}, {{"ORDINAUT_TEST_SHUTDOWN_FILE", marker.string()}});
  const int port = server->port();
  REQUIRE(client(port)->Get("/ext/srvtest/hello"));
  // An idle keep-alive connection must not hold the shutdown up.
  RawConnection idle(port);
  idle.send("GET /ext/srvtest/hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
  CHECK(idle.receive(2s, "hello").find("hello") != std::string::npos);

  int slow_status = 0;
  std::string slow_body;
  std::thread slow([&] {
    auto res = client(port)->Get("/ext/srvtest/slow?ms=1500");
    if (res) {
      slow_status = res->status;
      slow_body = res->body;
    }
  });
  std::this_thread::sleep_for(300ms);
  const auto signalled = Clock::now();
  server->kill(SIGTERM);
  std::this_thread::sleep_for(200ms);
  CHECK(!RawConnection(port).connected());  // no longer accepting
  idle.receive(1s);
  CHECK(idle.eof());  // the idle connection was closed at once
  CHECK(!fs::exists(marker));  // on_shutdown waits for the in-flight request

  auto exit = server->wait(8s);
  slow.join();
  REQUIRE(exit.has_value());
  CHECK(exit->exited);
  CHECK(exit->code == 0);
  CHECK(slow_status == 200);
  CHECK(slow_body == R"({"slept_ms":1500})");
  CHECK(Clock::now() - signalled < 3s);
  CHECK(read_text(marker) == "srvtest on_shutdown\n");
  CHECK(!server->log_lines("\"event\":\"shutdown_requested\"").empty());
  CHECK(!server->log_lines("\"event\":\"stopped\"").empty());
}

TEST_CASE("SIGINT ends open streams and exits 0 after on_shutdown") {
  test_support::TempDir tmp;
  const fs::path marker = tmp.path() / "shutdown.txt";
  auto server = start_server({}, {{"ORDINAUT_TEST_SHUTDOWN_FILE", marker.string()}});
  RawConnection sse(server->port());
  sse.send("GET /ext/srvtest/stream?mode=silent HTTP/1.1\r\nHost: localhost\r\n\r\n");
  REQUIRE(sse.receive(5s, "event: ready").find("event: ready") != std::string::npos);
  server->kill(SIGINT);
  auto exit = server->wait(5s);
  REQUIRE(exit.has_value());
  CHECK(exit->code == 0);
  std::string rest = sse.receive(2s);
  CHECK(rest.find("0\r\n\r\n") != std::string::npos);  // the chunked body was ended properly
  CHECK(read_text(marker) == "srvtest on_shutdown\n");
}

TEST_CASE("a request that outlives --shutdown-timeout does not keep the server alive") {
  test_support::TempDir tmp;
  const fs::path marker = tmp.path() / "shutdown.txt";
  auto server = start_server({"--shutdown-timeout", "1"}, {{"ORDINAUT_TEST_SHUTDOWN_FILE", marker.string()}});
  const int port = server->port();
  REQUIRE(client(port)->Get("/ext/srvtest/hello"));
  std::thread slow([&] { client(port)->Get("/ext/srvtest/slow?ms=6000"); });
  std::this_thread::sleep_for(200ms);
  const auto signalled = Clock::now();
  server->kill(SIGTERM);
  auto exit = server->wait(6s);
  REQUIRE(exit.has_value());
  CHECK(exit->code == 0);
  CHECK(Clock::now() - signalled < 4500ms);
  CHECK(read_text(marker) == "srvtest on_shutdown\n");
  CHECK(!server->log_lines("\"event\":\"shutdown_timeout\"").empty());
  slow.join();
}

TEST_CASE("--lifecycle-timeout bounds a hung on_shutdown; the server still exits 0") {
  test_support::TempDir tmp;
  const fs::path marker = tmp.path() / "shutdown.txt";
  auto server = start_server({"--lifecycle-timeout", "0.3"}, {{"ORDINAUT_TEST_SHUTDOWN_FILE", marker.string()},
                                                               {"ORDINAUT_TEST_SHUTDOWN_HANG_MS", "20000"}});
  REQUIRE(client(server->port())->Get("/ext/srvtest/hello"));  // loads srvtest
  const auto signalled = Clock::now();
  server->kill(SIGTERM);
  auto exit = server->wait(10s);
  REQUIRE(exit.has_value());
  CHECK(exit->exited);
  CHECK(exit->code == 0);
  CHECK(Clock::now() - signalled < 5s);  // not the 20 s the hook sleeps
  CHECK(read_text(marker) == "srvtest on_shutdown\n");
  auto lines = server->log_lines("on_shutdown() did not return within 300 ms");
  CHECK(lines.size() == 1);
}
