// Resumable MCP streams (SEP-1699) against the real ordinaut-server: event ids
// on every SSE message, the priming event of POST streams (2025-11-25), a tool
// that closes its stream early (ToolContext::close_stream, fixture tool
// test_reconnection), GET + Last-Event-ID replaying exactly the missed events
// (from the store, and live once resumed), clear errors for unknown and
// evicted ids, and the store's bounds. The EventStore on its own is in
// test_mcp_event_store.cpp.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include <ordinaut/json.hpp>

#include "mcp_support.hpp"

using namespace mcp_test;
using ordinaut::Json;

namespace {

constexpr const char* kPath = "/ext/mcp_http/";

Json parse(const std::string& text) {
  auto doc = ordinaut::json::parse(text);
  if (!doc) FAIL("not JSON: " << text << " (" << doc.error().message << ")");
  return std::move(doc).value();
}

HeaderList rpc_headers(const std::string& session, const std::string& version = "2025-11-25") {
  HeaderList h = {{"Content-Type", "application/json"}, {"Accept", "application/json, text/event-stream"}};
  if (!session.empty()) h.emplace_back("Mcp-Session-Id", session);
  if (!version.empty()) h.emplace_back("MCP-Protocol-Version", version);
  return h;
}

HeaderList resume_headers(const std::string& session, const std::string& last_event_id) {
  return {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}, {"Last-Event-ID", last_event_id}};
}

std::string open_session(int port, const std::string& version = "2025-11-25") {
  auto r = request(port, "POST", kPath, rpc_headers({}, {}),
                   R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":")" + version +
                       R"(","capabilities":{},"clientInfo":{"name":"resume-test","version":"1.0"}}})");
  REQUIRE(r.status == 200);
  const std::string session = r.header("mcp-session-id");
  REQUIRE(request(port, "POST", kPath, rpc_headers(session, version),
                  R"({"jsonrpc":"2.0","method":"notifications/initialized"})")
              .status == 202);
  return session;
}

std::string call_body(int id, const std::string& name, const std::string& args = "{}") {
  return R"({"jsonrpc":"2.0","id":)" + std::to_string(id) + R"(,"method":"tools/call","params":{"name":")" + name +
         R"(","arguments":)" + args + "}}";
}

std::uint64_t num(const std::string& id) {
  REQUIRE_FALSE(id.empty());
  return std::stoull(id);
}

/// Every event of a stream until it ends.
std::vector<Connection::Event> drain(Connection& c) {
  std::vector<Connection::Event> events;
  while (auto e = c.next_raw_event()) events.push_back(*e);
  CHECK(c.complete());
  return events;
}

void check_increasing(const std::vector<Connection::Event>& events) {
  for (std::size_t i = 1; i < events.size(); ++i) CHECK(num(events[i - 1].id) < num(events[i].id));
}

Server& shared_server() {
  static Server server;
  return server;
}

}  // namespace

TEST_CASE("POST streams start with a priming event; every event has an increasing id") {
  const int port = shared_server().port();
  const std::string session = open_session(port);
  Connection c(port, "POST", kPath, rpc_headers(session), call_body(2, "test_tool_with_logging"));
  REQUIRE(c.head().status == 200);
  auto events = drain(c);
  REQUIRE(events.size() == 5);  // priming, 3 log messages, the result
  CHECK(events[0].data.empty());
  CHECK(events[0].retry == "1000");
  for (std::size_t i = 1; i < 5; ++i) CHECK_FALSE(events[i].data.empty());
  CHECK(parse(events[4].data)["id"].GetInt() == 2);
  check_increasing(events);

  // A second stream of the same session continues the sequence.
  Connection c2(port, "POST", kPath, rpc_headers(session), call_body(3, "test_tool_with_logging"));
  auto more = drain(c2);
  REQUIRE(more.size() == 5);
  CHECK(num(more[0].id) > num(events[4].id));

  // Before 2025-11-25 clients may not cope with empty data: no priming event, ids all the same.
  const std::string older = open_session(port, "2025-06-18");
  Connection c3(port, "POST", kPath, rpc_headers(older, "2025-06-18"), call_body(4, "test_tool_with_logging"));
  auto old_events = drain(c3);
  REQUIRE(old_events.size() == 4);
  for (const auto& e : old_events) CHECK_FALSE(e.data.empty());
  check_increasing(old_events);
}

TEST_CASE("Last-Event-ID replays exactly the events after it, of that stream only") {
  const int port = shared_server().port();
  const std::string session = open_session(port);
  Connection c(port, "POST", kPath, rpc_headers(session), call_body(5, "test_tool_with_logging"));
  auto events = drain(c);
  REQUIRE(events.size() == 5);
  // Another stream in between must not leak into the replay.
  REQUIRE(request(port, "POST", kPath, rpc_headers(session), call_body(6, "test_tool_with_logging")).status == 200);

  for (std::size_t from = 0; from < events.size(); ++from) {
    CAPTURE(from);
    Connection r(port, "GET", kPath, resume_headers(session, events[from].id));
    REQUIRE(r.head().status == 200);
    CHECK(r.head().header("content-type") == "text/event-stream");
    auto replayed = drain(r);
    REQUIRE(replayed.size() == events.size() - from - 1);
    for (std::size_t i = 0; i < replayed.size(); ++i) {
      CHECK(replayed[i].id == events[from + 1 + i].id);
      CHECK(replayed[i].data == events[from + 1 + i].data);
    }
  }
}

TEST_CASE("test_reconnection: the stream closes before the result, which the resume delivers") {
  const int port = shared_server().port();
  const std::string session = open_session(port);
  // The standalone GET stream is open, as with the SDK client: a resume is no second standalone stream.
  Connection standalone(port, "GET", kPath, {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}});
  REQUIRE(standalone.head().status == 200);

  Connection c(port, "POST", kPath, rpc_headers(session), call_body(7, "test_reconnection"));
  REQUIRE(c.head().status == 200);
  CHECK(c.head().header("content-type") == "text/event-stream");
  auto posted = drain(c);
  REQUIRE(!posted.empty());
  CHECK(posted[0].data.empty());  // priming first
  CHECK_FALSE(posted[0].retry.empty());
  for (const auto& e : posted) {
    if (!e.data.empty()) CHECK_FALSE(parse(e.data).HasMember("result"));  // never the result
  }

  Connection r(port, "GET", kPath, resume_headers(session, posted.back().id));
  REQUIRE(r.head().status == 200);
  CHECK(r.head().header("mcp-session-id") == session);
  auto resumed = drain(r);
  REQUIRE(!resumed.empty());
  CHECK(num(resumed.front().id) > num(posted.back().id));
  check_increasing(resumed);
  auto result = parse(resumed.back().data);
  CHECK(result["id"].GetInt() == 7);
  CHECK(std::string(result["result"]["content"][0]["text"].GetString()) == "Reconnection test completed successfully");
}

TEST_CASE("a resume before the result carries the rest live") {
  const int port = shared_server().port();
  const std::string session = open_session(port);
  Connection c(port, "POST", kPath, rpc_headers(session), call_body(8, "test_reconnection", R"({"wait_for":"k8"})"));
  auto posted = drain(c);
  REQUIRE(posted.size() >= 1);
  Connection r(port, "GET", kPath, resume_headers(session, posted[0].id));
  REQUIRE(r.head().status == 200);
  // The log line the tool sent after closing (stored, replayed), then nothing until released.
  auto log = r.next_raw_event();
  REQUIRE(log);
  CHECK(std::string(parse(log->data)["method"].GetString()) == "notifications/message");
  auto released = request(port, "POST", kPath, rpc_headers(session), call_body(9, "release_reconnection",
                                                                               R"({"key":"k8"})"));
  REQUIRE(released.status == 200);
  auto result = r.next_raw_event();
  REQUIRE(result);
  CHECK(num(result->id) > num(log->id));
  CHECK(parse(result->data)["id"].GetInt() == 8);
  CHECK_FALSE(r.next_raw_event());  // the stream ends after the last response
  CHECK(r.complete());

  // Resuming the same stream again from its start replays everything once more.
  Connection again(port, "GET", kPath, resume_headers(session, posted[0].id));
  auto all = drain(again);
  REQUIRE(all.size() == 2);
  CHECK(all[0].id == log->id);
  CHECK(all[1].id == result->id);
}

TEST_CASE("unknown, malformed and foreign ids are refused with a clear error") {
  const int port = shared_server().port();
  const std::string session = open_session(port);
  auto unknown = request(port, "GET", kPath, resume_headers(session, "999999999"));
  CHECK(unknown.status == 400);
  CHECK(unknown.body.find("never issued in this session") != std::string::npos);
  auto malformed = request(port, "GET", kPath, resume_headers(session, "abc"));
  CHECK(malformed.status == 400);
  CHECK(malformed.body.find("not an event id") != std::string::npos);
  // Ids are per session: another session's id means nothing here.
  const std::string other = open_session(port);
  Connection c(port, "POST", kPath, rpc_headers(other), call_body(1, "test_tool_with_logging"));
  auto events = drain(c);
  const std::string fresh = open_session(port);
  auto foreign = request(port, "GET", kPath, resume_headers(fresh, events.back().id));
  CHECK(foreign.status == 400);
}

TEST_CASE("the store stays bounded; an evicted id is refused, naming the limits") {
  Server server({}, {{"ORDINAUT_MCP_EVENT_STORE_EVENTS", "6"}});
  const int port = server.port();
  const std::string session = open_session(port);
  Connection c1(port, "POST", kPath, rpc_headers(session), call_body(1, "test_tool_with_logging"));
  auto first = drain(c1);
  REQUIRE(first.size() == 5);
  Connection c2(port, "POST", kPath, rpc_headers(session), call_body(2, "test_tool_with_logging"));
  auto second = drain(c2);
  REQUIRE(second.size() == 5);
  // 10 events issued, the last 6 kept: the first stream's first four are gone.
  auto evicted = request(port, "GET", kPath, resume_headers(session, first[3].id));
  CHECK(evicted.status == 400);
  CHECK(evicted.body.find("no longer stored") != std::string::npos);
  CHECK(evicted.body.find("last 6 events") != std::string::npos);
  Connection kept(port, "GET", kPath, resume_headers(session, first[4].id));
  CHECK(drain(kept).empty());  // still stored; nothing after it in that stream
  Connection tail(port, "GET", kPath, resume_headers(session, second[1].id));
  CHECK(drain(tail).size() == 3);

}

TEST_CASE("resumption off: no priming event, close_stream refused, Last-Event-ID refused") {
  Server server({}, {{"ORDINAUT_MCP_EVENT_STORE_BYTES", "0"}});
  const int port = server.port();
  const std::string session = open_session(port);
  Connection c(port, "POST", kPath, rpc_headers(session), call_body(1, "test_tool_with_logging"));
  auto events = drain(c);
  REQUIRE(events.size() == 4);
  for (const auto& e : events) CHECK_FALSE(e.data.empty());
  // The tool's log line makes the reply a stream: one without a priming event, carrying the result.
  Connection call(port, "POST", kPath, rpc_headers(session), call_body(2, "test_reconnection"));
  auto streamed = drain(call);
  REQUIRE(streamed.size() == 2);
  CHECK_FALSE(streamed[0].data.empty());
  CHECK(streamed[1].data.find("completed without closing the stream") != std::string::npos);
  auto refused = request(port, "GET", kPath, resume_headers(session, events[0].id));
  CHECK(refused.status == 400);
  CHECK(refused.body.find("keeps no SSE events") != std::string::npos);
}
