// Raw-HTTP protocol tests of mcp_http against the real ordinaut-server: the
// Streamable HTTP error paths (406, 415, 400/404 sessions, 409, 413, 403
// rebinding, DELETE), JSON-RPC envelopes and codes, batches, JSON vs SSE
// replies, logging/progress/sampling on the call's stream, cancellation,
// list_changed on the GET stream, pagination, scopes and the REST companion.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <atomic>
#include <fstream>
#include <set>

#include <ordinaut/json.hpp>

#include "mcp_support.hpp"

using namespace mcp_test;
using ordinaut::Json;

namespace {

constexpr const char* kPath = "/ext/mcp_http/";
constexpr const char* kAccept = "application/json, text/event-stream";

Server& shared_server() {
  static Server server;
  return server;
}

Json parse(const std::string& text) {
  auto doc = ordinaut::json::parse(text);
  if (!doc) FAIL("not JSON: " << text << " (" << doc.error().message << ")");
  return std::move(doc).value();
}

HeaderList rpc_headers(const std::string& session = {}, const std::string& version = "2025-11-25") {
  HeaderList h = {{"Content-Type", "application/json"}, {"Accept", kAccept}};
  if (!session.empty()) h.emplace_back("Mcp-Session-Id", session);
  if (!version.empty()) h.emplace_back("MCP-Protocol-Version", version);
  return h;
}

std::string init_body(const std::string& version = "2025-11-25", const std::string& caps = "{}") {
  return R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":")" + version +
         R"(","capabilities":)" + caps + R"(,"clientInfo":{"name":"raw-test","version":"1.0"}}})";
}

/// Initializes a session and sends notifications/initialized; returns its id.
std::string open_session(int port, const std::string& version = "2025-11-25", const std::string& caps = "{}",
                         HeaderList extra = {}) {
  HeaderList h = rpc_headers({}, {});
  for (auto& e : extra) h.push_back(e);
  auto r = request(port, "POST", kPath, h, init_body(version, caps));
  REQUIRE(r.status == 200);
  const std::string session = r.header("mcp-session-id");
  REQUIRE(session.size() == 32);
  HeaderList h2 = rpc_headers(session, version);
  for (auto& e : extra) h2.push_back(e);
  auto n = request(port, "POST", kPath, h2, R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  REQUIRE(n.status == 202);
  return session;
}

HttpResponse rpc(int port, const std::string& session, const std::string& body,
                 const std::string& version = "2025-11-25", HeaderList extra = {}) {
  HeaderList h = rpc_headers(session, version);
  for (auto& e : extra) h.push_back(e);
  return request(port, "POST", kPath, h, body);
}

std::string call_body(int id, const std::string& name, const std::string& args = "{}", const std::string& meta = {}) {
  return R"({"jsonrpc":"2.0","id":)" + std::to_string(id) + R"(,"method":"tools/call","params":{"name":")" + name +
         R"(","arguments":)" + args + (meta.empty() ? "" : R"(,"_meta":)" + meta) + "}}";
}

int error_code(const Json& doc) { return doc["error"]["code"].GetInt(); }

}  // namespace

TEST_CASE("initialize negotiates the version and issues a session id") {
  const int port = shared_server().port();
  for (const std::string v : {"2025-11-25", "2025-06-18", "2025-03-26"}) {
    auto r = request(port, "POST", kPath, rpc_headers({}, {}), init_body(v));
    REQUIRE(r.status == 200);
    CHECK(r.header("content-type") == "application/json");
    auto doc = parse(r.body);
    CHECK(std::string(doc["result"]["protocolVersion"].GetString()) == v);
    CHECK(doc["result"]["capabilities"]["tools"]["listChanged"].GetBool());
    CHECK(doc["result"]["capabilities"].HasMember("logging"));
    CHECK(r.header("mcp-session-id").size() == 32);
  }
  auto r = request(port, "POST", kPath, rpc_headers({}, {}), init_body("1999-01-01"));
  CHECK(std::string(parse(r.body)["result"]["protocolVersion"].GetString()) == "2025-11-25");
  // Two sessions never share an id.
  CHECK(open_session(port) != open_session(port));
  // The endpoint also answers without the trailing slash.
  auto no_slash = request(port, "POST", "/ext/mcp_http", rpc_headers({}, {}), init_body());
  CHECK(no_slash.status == 200);
  // Bad initialize params: -32602, and no session.
  auto bad = request(port, "POST", kPath, rpc_headers({}, {}),
                     R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}})");
  CHECK(error_code(parse(bad.body)) == -32602);
  CHECK(bad.header("mcp-session-id").empty());
}

TEST_CASE("Accept, Content-Type, body and version header are checked") {
  const int port = shared_server().port();
  auto r = request(port, "POST", kPath, {{"Content-Type", "application/json"}, {"Accept", "application/json"}},
                   init_body());
  CHECK(r.status == 406);
  CHECK(error_code(parse(r.body)) == -32000);
  r = request(port, "POST", kPath, {{"Content-Type", "text/plain"}, {"Accept", kAccept}}, init_body());
  CHECK(r.status == 415);
  r = request(port, "POST", kPath,
              {{"Content-Type", "application/json; charset=utf-8"}, {"Accept", "text/event-stream;q=1, application/json"}},
              init_body());
  CHECK(r.status == 200);
  r = request(port, "POST", kPath, rpc_headers({}, "2024-01-01"), init_body());
  CHECK(r.status == 400);
  CHECK(std::string(parse(r.body)["error"]["message"].GetString()).find("2025-06-18") != std::string::npos);
  r = request(port, "GET", kPath, {{"Accept", "application/json"}});
  CHECK(r.status == 406);
  r = request(port, "PUT", kPath, rpc_headers(), "{}");
  CHECK(r.status == 405);
  CHECK(r.header("allow") == "GET, POST, DELETE");
}

TEST_CASE("sessions: 400 without, 404 unknown, DELETE ends them") {
  const int port = shared_server().port();
  const std::string ping = R"({"jsonrpc":"2.0","id":"p","method":"ping"})";
  auto r = rpc(port, "", ping);
  CHECK(r.status == 400);
  CHECK(error_code(parse(r.body)) == -32000);
  r = rpc(port, "0123456789abcdef0123456789abcdef", ping);
  CHECK(r.status == 404);
  CHECK(error_code(parse(r.body)) == -32001);
  CHECK(request(port, "GET", kPath, {{"Accept", "text/event-stream"}}).status == 400);

  const std::string session = open_session(port);
  r = rpc(port, session, ping);
  REQUIRE(r.status == 200);
  CHECK(r.body == R"({"jsonrpc":"2.0","id":"p","result":{}})");
  CHECK(r.header("mcp-session-id") == session);
  // initialize again on the same session is refused.
  r = rpc(port, session, init_body());
  CHECK(r.status == 400);
  CHECK(error_code(parse(r.body)) == -32600);

  CHECK(request(port, "DELETE", kPath, rpc_headers(session)).status == 200);
  CHECK(rpc(port, session, ping).status == 404);
  CHECK(request(port, "DELETE", kPath, rpc_headers(session)).status == 404);
  CHECK(request(port, "DELETE", kPath, rpc_headers()).status == 400);
}

TEST_CASE("/ext/mcp_http/mcp is the same endpoint: one server, one set of sessions") {
  const int port = shared_server().port();
  constexpr const char* kMcp = "/ext/mcp_http/mcp";
  const std::string ping = R"({"jsonrpc":"2.0","id":"p","method":"ping"})";
  // A session opened at /mcp is used at / ...
  auto init = request(port, "POST", kMcp, rpc_headers({}, {}), init_body());
  REQUIRE(init.status == 200);
  const std::string session = init.header("mcp-session-id");
  REQUIRE(session.size() == 32);
  CHECK(request(port, "POST", kMcp, rpc_headers(session), R"({"jsonrpc":"2.0","method":"notifications/initialized"})")
            .status == 202);
  auto r = rpc(port, session, ping);
  CHECK(r.status == 200);
  CHECK(r.body == R"({"jsonrpc":"2.0","id":"p","result":{}})");
  // ... and one opened at / is used, listed and ended at /mcp.
  const std::string other = open_session(port);
  r = request(port, "POST", kMcp, rpc_headers(other), R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})");
  REQUIRE(r.status == 200);
  CHECK(parse(r.body)["result"]["tools"].Size() > 0);
  CHECK(request(port, "DELETE", kMcp, rpc_headers(other)).status == 200);
  CHECK(rpc(port, other, ping).status == 404);
  // The same checks as at /: no session, unknown session, wrong method.
  CHECK(request(port, "POST", kMcp, rpc_headers(), ping).status == 400);
  CHECK(request(port, "POST", kMcp, rpc_headers("0123456789abcdef0123456789abcdef"), ping).status == 404);
  r = request(port, "PUT", kMcp, rpc_headers(), "{}");
  CHECK(r.status == 405);
  CHECK(r.header("allow") == "GET, POST, DELETE");
  CHECK(request(port, "DELETE", kPath, rpc_headers(session)).status == 200);
}

TEST_CASE("an unsupported MCP-Protocol-Version header is refused on POST, GET and DELETE, naming it") {
  const int port = shared_server().port();
  const std::string session = open_session(port);
  const std::string ping = R"({"jsonrpc":"2.0","id":"p","method":"ping"})";
  HeaderList get_headers = {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session},
                            {"MCP-Protocol-Version", "1999-01-01"}};
  for (const auto& r : {request(port, "POST", kPath, rpc_headers(session, "1999-01-01"), ping),
                        request(port, "GET", kPath, get_headers),
                        request(port, "DELETE", kPath, rpc_headers(session, "1999-01-01"))}) {
    CHECK(r.status == 400);
    CHECK(error_code(parse(r.body)) == -32000);
    CHECK(r.body.find("unsupported MCP-Protocol-Version \\\"1999-01-01\\\"") != std::string::npos);
  }
  // Nothing was done: the session still answers.
  CHECK(rpc(port, session, ping).status == 200);
}

TEST_CASE("JSON-RPC envelopes and error codes") {
  const int port = shared_server().port();
  const std::string session = open_session(port);
  auto r = rpc(port, session, "{\"jsonrpc\":\"2.0\",");
  CHECK(r.status == 400);
  CHECK(error_code(parse(r.body)) == -32700);
  CHECK(parse(r.body)["id"].IsNull());

  for (const std::string bad : {R"({"jsonrpc":"1.0","id":1,"method":"ping"})", R"({"jsonrpc":"2.0","id":1.5,"method":"ping"})",
                                R"({"jsonrpc":"2.0","id":null,"method":"ping"})", R"({"jsonrpc":"2.0","id":1,"method":7})",
                                R"({"jsonrpc":"2.0","id":1,"method":"ping","params":[1]})",
                                R"({"jsonrpc":"2.0","id":1,"method":"ping","extra":true})", R"([])", R"(42)"}) {
    CAPTURE(bad);
    r = rpc(port, session, bad);
    CHECK(r.status == 400);
    CHECK(error_code(parse(r.body)) == -32600);
  }
  r = rpc(port, session, R"({"jsonrpc":"2.0","id":2,"method":"sampling/nope"})");
  CHECK(r.status == 200);
  CHECK(error_code(parse(r.body)) == -32601);
  CHECK(parse(r.body)["id"].GetInt() == 2);
  r = rpc(port, session, R"({"jsonrpc":"2.0","id":3,"method":"logging/setLevel","params":{"level":"loud"}})");
  CHECK(error_code(parse(r.body)) == -32602);
  r = rpc(port, session, R"({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"arguments":{}}})");
  CHECK(error_code(parse(r.body)) == -32602);
  r = rpc(port, session, call_body(5, "no_such_tool"));
  CHECK(error_code(parse(r.body)) == -32602);
  // Notifications and responses alone: 202, empty body.
  r = rpc(port, session, R"({"jsonrpc":"2.0","method":"notifications/roots/list_changed"})");
  CHECK(r.status == 202);
  CHECK(r.body.empty());
  r = rpc(port, session, R"({"jsonrpc":"2.0","id":77,"result":{}})");
  CHECK(r.status == 202);
}

TEST_CASE("batches only with protocol 2025-03-26") {
  const int port = shared_server().port();
  const std::string old = open_session(port, "2025-03-26");
  auto r = rpc(port, old,
               R"([{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},)"
               R"({"jsonrpc":"2.0","id":2,"method":"tools/list"},{"jsonrpc":"2.0","id":3}])",
               "2025-03-26");
  REQUIRE(r.status == 200);
  auto doc = parse(r.body);
  REQUIRE(doc.IsArray());
  REQUIRE(doc.Size() == 3);  // two responses and the error for the invalid member
  std::set<std::string> seen;
  for (auto& m : doc.GetArray()) seen.insert(ordinaut::json::dump(m["id"]) + (m.HasMember("error") ? "E" : "R"));
  CHECK(seen == std::set<std::string>{"1R", "2R", "3E"});
  CHECK(rpc(port, old, "[" + init_body() + "]", "2025-03-26").status == 400);

  const std::string current = open_session(port);
  r = rpc(port, current, R"([{"jsonrpc":"2.0","id":1,"method":"ping"}])");
  CHECK(r.status == 400);
  CHECK(error_code(parse(r.body)) == -32600);
}

TEST_CASE("DNS rebinding: non-local Host or Origin is refused") {
  const int port = shared_server().port();
  HeaderList evil = rpc_headers({}, {});
  evil.emplace_back("Host", "evil.example.com");
  evil.emplace_back("Origin", "http://evil.example.com");
  CHECK(request(port, "POST", kPath, evil, init_body()).status == 403);
  HeaderList bad_origin = rpc_headers({}, {});
  bad_origin.emplace_back("Origin", "http://evil.example.com");
  CHECK(request(port, "POST", kPath, bad_origin, init_body()).status == 403);
  HeaderList bad_host = rpc_headers({}, {});
  bad_host.emplace_back("Host", "attacker.test:" + std::to_string(port));
  CHECK(request(port, "POST", kPath, bad_host, init_body()).status == 403);
  CHECK(request(port, "GET", "/ext/mcp_http/tools", {{"Host", "evil.example.com"}}).status == 403);
  for (const std::string host : {"localhost", "127.0.0.1", "[::1]"}) {
    HeaderList ok = rpc_headers({}, {});
    ok.emplace_back("Host", host + ":" + std::to_string(port));
    ok.emplace_back("Origin", "http://" + host + ":" + std::to_string(port));
    auto r = request(port, "POST", kPath, ok, init_body());
    CHECK(r.status == 200);
    CHECK(r.header("access-control-allow-origin") == "http://" + host + ":" + std::to_string(port));
  }
}

TEST_CASE("a DNS name is accepted once configured") {
  Server server({}, {{"ORDINAUT_MCP_ALLOWED_HOSTS", "mcp.example.test"}});
  HeaderList h = rpc_headers({}, {});
  h.emplace_back("Host", "mcp.example.test:443");
  CHECK(request(server.port(), "POST", kPath, h, init_body()).status == 200);
  HeaderList other = rpc_headers({}, {});
  other.emplace_back("Host", "other.example.test");
  CHECK(request(server.port(), "POST", kPath, other, init_body()).status == 403);
}

TEST_CASE("tools/call replies JSON unless the tool streams; logging level filters") {
  const int port = shared_server().port();
  const std::string session = open_session(port);
  auto r = rpc(port, session, call_body(1, "echo", R"({"text":"hi"})"));
  REQUIRE(r.status == 200);
  CHECK(r.header("content-type") == "application/json");
  auto doc = parse(r.body);
  CHECK(std::string(doc["result"]["structuredContent"]["text"].GetString()) == "hi");
  CHECK(std::string(doc["result"]["content"][0]["text"].GetString()) == R"({"text":"hi"})");

  Connection c(port, "POST", kPath, rpc_headers(session), call_body(2, "test_tool_with_logging"));
  CHECK(c.head().status == 200);
  CHECK(c.head().header("content-type") == "text/event-stream");
  std::vector<std::string> events;
  while (auto e = c.next_event()) events.push_back(*e);
  REQUIRE(events.size() == 4);
  for (int i = 0; i < 3; ++i) {
    auto n = parse(events[static_cast<std::size_t>(i)]);
    CHECK(std::string(n["method"].GetString()) == "notifications/message");
    CHECK(std::string(n["params"]["level"].GetString()) == "info");
    CHECK(std::string(n["params"]["logger"].GetString()) == "ext.mcp_conformance.test_tool_with_logging");
  }
  CHECK(parse(events[3])["id"].GetInt() == 2);

  // Above the tool's level nothing streams, so the reply is plain JSON again.
  REQUIRE(rpc(port, session, R"({"jsonrpc":"2.0","id":3,"method":"logging/setLevel","params":{"level":"warning"}})")
              .status == 200);
  r = rpc(port, session, call_body(4, "test_tool_with_logging"));
  CHECK(r.header("content-type") == "application/json");
  CHECK(parse(r.body)["id"].GetInt() == 4);
}

TEST_CASE("progress only with a progress token") {
  const int port = shared_server().port();
  const std::string session = open_session(port);
  Connection c(port, "POST", kPath, rpc_headers(session),
               call_body(7, "test_tool_with_progress", "{}", R"({"progressToken":"tok-1"})"));
  std::vector<double> progress;
  std::optional<std::string> last;
  while (auto e = c.next_event()) {
    auto doc = parse(*e);
    if (doc.HasMember("method")) {
      CHECK(std::string(doc["params"]["progressToken"].GetString()) == "tok-1");
      CHECK(doc["params"]["total"].GetDouble() == 100);
      progress.push_back(doc["params"]["progress"].GetDouble());
    } else {
      last = *e;
    }
  }
  CHECK(progress == std::vector<double>{0, 50, 100});
  REQUIRE(last);
  CHECK(parse(*last)["id"].GetInt() == 7);
  auto plain = rpc(port, session, call_body(8, "test_tool_with_progress"));
  CHECK(plain.header("content-type") == "application/json");
}

TEST_CASE("sampling: the request goes out on the call's stream, the answer comes back by POST") {
  const int port = shared_server().port();
  const std::string session = open_session(port, "2025-11-25", R"({"sampling":{}})");
  Connection c(port, "POST", kPath, rpc_headers(session), call_body(11, "test_sampling", R"({"prompt":"2+2?"})"));
  auto ask = c.next_event();
  REQUIRE(ask);
  auto req = parse(*ask);
  CHECK(std::string(req["method"].GetString()) == "sampling/createMessage");
  CHECK(std::string(req["params"]["messages"][0]["content"]["text"].GetString()) == "2+2?");
  const std::string id = ordinaut::json::dump(req["id"]);
  auto answer = rpc(port, session,
                    R"({"jsonrpc":"2.0","id":)" + id +
                        R"(,"result":{"role":"assistant","model":"m","content":{"type":"text","text":"four"}}})");
  CHECK(answer.status == 202);
  auto result = c.next_event();
  REQUIRE(result);
  CHECK(std::string(parse(*result)["result"]["content"][0]["text"].GetString()) == "LLM response: four");
  CHECK_FALSE(c.next_event());

  // A client without the sampling capability is never asked: the tool fails.
  const std::string plain = open_session(port);
  auto r = rpc(port, plain, call_body(12, "test_sampling", R"({"prompt":"x"})"));
  auto doc = parse(r.body);
  CHECK(doc["result"]["isError"].GetBool());
  CHECK(std::string(doc["result"]["content"][0]["text"].GetString()).find("sampling capability") != std::string::npos);
}

TEST_CASE("notifications/cancelled ends the call without a response") {
  const int port = shared_server().port();
  const std::string session = open_session(port);
  const auto before = parse(rpc(port, session, call_body(1, "cancellations")).body)["result"]["structuredContent"]["count"].GetInt();
  Connection c(port, "POST", kPath, rpc_headers(session), call_body(42, "wait_for_cancel"));
  auto first = c.next_event();  // the tool's log line: the call is running
  REQUIRE(first);
  CHECK(std::string(parse(*first)["method"].GetString()) == "notifications/message");
  const auto started = Clock::now();
  auto r = rpc(port, session,
               R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":42,"reason":"test"}})");
  CHECK(r.status == 202);
  CHECK_FALSE(c.next_event(5s));  // the stream ends with no response for id 42
  CHECK(c.complete());
  CHECK(Clock::now() - started < 3s);
  int after = before;
  for (int i = 0; i < 100 && after == before; ++i) {
    std::this_thread::sleep_for(20ms);
    after = parse(rpc(port, session, call_body(2, "cancellations")).body)["result"]["structuredContent"]["count"].GetInt();
  }
  CHECK(after == before + 1);
}

TEST_CASE("input validation: isError in 2025-11-25, -32602 before") {
  const int port = shared_server().port();
  const std::string current = open_session(port);
  auto doc = parse(rpc(port, current, call_body(1, "echo", R"({"text":5})")).body);
  CHECK(doc["result"]["isError"].GetBool());
  CHECK(std::string(doc["result"]["content"][0]["text"].GetString()).find("/text") != std::string::npos);
  const std::string older = open_session(port, "2025-06-18");
  doc = parse(rpc(port, older, call_body(2, "echo", R"({"text":5})"), "2025-06-18").body);
  CHECK(error_code(doc) == -32602);
  CHECK(std::string(doc["error"]["data"]["pointer"].GetString()) == "/text");
  // A failing tool is a result with isError, never a JSON-RPC error.
  doc = parse(rpc(port, current, call_body(3, "test_error_handling")).body);
  CHECK(doc["result"]["isError"].GetBool());
}

TEST_CASE("GET stream: one per session, list_changed when a lazy extension loads") {
  // A server of its own: the lazy extension must not be loaded yet.
  Server server;
  const int port = server.port();
  const std::string session = open_session(port);
  Connection stream(port, "GET", kPath, {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}});
  REQUIRE(stream.head().status == 200);
  CHECK(stream.head().header("content-type") == "text/event-stream");
  auto second = request(port, "GET", kPath, {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}});
  CHECK(second.status == 409);

  auto listed = parse(rpc(port, session, R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})").body);
  for (auto& t : listed["result"]["tools"].GetArray()) CHECK(std::string(t["name"].GetString()) != "ext.mcp_lazy.hello");
  auto r = parse(rpc(port, session, call_body(2, "ext.mcp_lazy.hello")).body);
  CHECK(std::string(r["result"]["content"][0]["text"].GetString()) == "hello from a lazily loaded extension");
  auto event = stream.next_event(5s);
  REQUIRE(event);
  CHECK(std::string(parse(*event)["method"].GetString()) == "notifications/tools/list_changed");

  // DELETE closes the stream (after the resources and prompts list_changed of the same load).
  CHECK(request(port, "DELETE", kPath, rpc_headers(session)).status == 200);
  while (auto more = stream.next_event(5s)) {
    CHECK(std::string(parse(*more)["method"].GetString()).ends_with("/list_changed"));
  }
  CHECK(stream.complete());
}

TEST_CASE("tools/list pagination with an opaque cursor") {
  Server server({}, {{"ORDINAUT_MCP_PAGE_SIZE", "4"}});
  const int port = server.port();
  const std::string session = open_session(port);
  std::vector<std::string> names;
  std::string cursor;
  int pages = 0;
  do {
    const std::string params = cursor.empty() ? "{}" : R"({"cursor":")" + cursor + R"("})";
    auto doc = parse(rpc(port, session, R"({"jsonrpc":"2.0","id":1,"method":"tools/list","params":)" + params + "}").body);
    REQUIRE(doc.HasMember("result"));
    CHECK(doc["result"]["tools"].Size() <= 4);
    for (auto& t : doc["result"]["tools"].GetArray()) {
      CHECK(t.HasMember("description"));
      CHECK(std::string(t["inputSchema"]["type"].GetString()) == "object");
      names.emplace_back(t["name"].GetString());
    }
    cursor = doc["result"].HasMember("nextCursor") ? doc["result"]["nextCursor"].GetString() : "";
    ++pages;
  } while (!cursor.empty() && pages < 20);
  CHECK(pages >= 4);
  CHECK(std::set<std::string>(names.begin(), names.end()).size() == names.size());
  CHECK(std::is_sorted(names.begin(), names.end()));
  CHECK(std::find(names.begin(), names.end(), "echo") != names.end());
  auto bad = parse(rpc(port, session, R"({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"zzz"}})").body);
  CHECK(error_code(bad) == -32602);
}

TEST_CASE("scopes: ext:mcp_http:mcp for MCP, tool:* scopes per tool") {
  Server server({"--require-scopes"});
  const int port = server.port();
  HeaderList routes_only = rpc_headers({}, {});
  routes_only.emplace_back("X-Scopes", "ext:mcp_http:routes");
  auto r = request(port, "POST", kPath, routes_only, init_body());
  CHECK(r.status == 403);
  CHECK(std::string(parse(r.body)["error"]["message"].GetString()).find("ext:mcp_http:mcp") != std::string::npos);

  const HeaderList mcp = {{"X-Scopes", "ext:mcp_http:routes,ext:mcp_http:mcp"}};
  const std::string session = open_session(port, "2025-11-25", "{}", mcp);
  auto list = parse(rpc(port, session, R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})", "2025-11-25", mcp).body);
  CHECK(list["result"]["tools"].Size() == 0);
  auto denied = parse(rpc(port, session, call_body(2, "echo", R"({"text":"x"})"), "2025-11-25", mcp).body);
  CHECK(error_code(denied) == -32602);
  CHECK(std::string(denied["error"]["data"]["required_scope"].GetString()) == "tool:ext.mcp_conformance.echo");

  const HeaderList one_tool = {{"X-Scopes", "ext:mcp_http:routes, ext:mcp_http:mcp, tool:ext.mcp_conformance.echo"}};
  list = parse(rpc(port, session, R"({"jsonrpc":"2.0","id":3,"method":"tools/list"})", "2025-11-25", one_tool).body);
  REQUIRE(list["result"]["tools"].Size() == 1);
  CHECK(std::string(list["result"]["tools"][0]["name"].GetString()) == "echo");
  auto ok = parse(rpc(port, session, call_body(4, "echo", R"({"text":"x"})"), "2025-11-25", one_tool).body);
  CHECK(std::string(ok["result"]["structuredContent"]["text"].GetString()) == "x");

  const HeaderList ns = {{"X-Scopes", "ext:mcp_http:routes,ext:mcp_http:mcp,tool:ext.mcp_conformance.*"}};
  list = parse(rpc(port, session, R"({"jsonrpc":"2.0","id":5,"method":"tools/list"})", "2025-11-25", ns).body);
  CHECK(list["result"]["tools"].Size() > 10);

  // REST companion: tool scopes apply, the mcp scope is not needed.
  auto rest = request(port, "GET", "/ext/mcp_http/tools", {{"X-Scopes", "ext:mcp_http:routes,tool:ext.mcp_conformance.echo"}});
  CHECK(parse(rest.body)["count"].GetInt() == 1);
  rest = request(port, "POST", "/ext/mcp_http/invoke",
                 {{"Content-Type", "application/json"}, {"X-Scopes", "ext:mcp_http:routes"}},
                 R"({"tool":"ext.mcp_conformance.echo","parameters":{"text":"x"}})");
  CHECK(rest.status == 403);
}

TEST_CASE("body limit: 413") {
  Server server({"--max-body", "65536"});
  const std::string session = open_session(server.port());
  const std::string big = call_body(1, "echo", R"({"text":")" + std::string(70000, 'a') + R"("})");
  CHECK(rpc(server.port(), session, big).status == 413);
}

TEST_CASE("a silent slow call turns into a stream with keep-alives") {
  Server server({}, {{"ORDINAUT_MCP_KEEPALIVE_MS", "200"}});
  const std::string session = open_session(server.port());
  auto quick = rpc(server.port(), session, call_body(1, "sleep", R"({"ms":0})"));
  CHECK(quick.header("content-type") == "application/json");
  auto slow = rpc(server.port(), session, call_body(2, "sleep", R"({"ms":900})"));
  CHECK(slow.header("content-type") == "text/event-stream");
  CHECK(slow.body.find(": keepalive") != std::string::npos);
  CHECK(slow.body.find(R"("id":2,"result":{"content":[{"type":"text","text":"slept"}]})") != std::string::npos);
}

// Issue 13: a full store used to answer 503 to every new client until the
// idle timeout. Now the least recently used idle session makes room; 503 is
// left for a store whose sessions are all busy (tests/mcp/test_mcp_sessions.cpp).
TEST_CASE("session cap: the least recently used idle session makes room; idle expiry") {
  Server server({}, {{"ORDINAUT_MCP_MAX_SESSIONS", "2"}, {"ORDINAUT_MCP_SESSION_IDLE_S", "1"}});
  const int port = server.port();
  const std::string first = open_session(port);
  const std::string second = open_session(port);
  REQUIRE(rpc(port, second, R"({"jsonrpc":"2.0","id":1,"method":"ping"})").status == 200);  // first is now the LRU
  auto third = request(port, "POST", kPath, rpc_headers({}, {}), init_body());
  CHECK(third.status == 200);
  CHECK(third.header("mcp-session-id").size() == 32);
  CHECK(rpc(port, first, R"({"jsonrpc":"2.0","id":1,"method":"ping"})").status == 404);
  CHECK(rpc(port, second, R"({"jsonrpc":"2.0","id":1,"method":"ping"})").status == 200);
  std::this_thread::sleep_for(1500ms);  // both idle past the limit: the next initialize expires them
  const std::string fourth = open_session(port);
  CHECK(rpc(port, second, R"({"jsonrpc":"2.0","id":1,"method":"ping"})").status == 404);
  CHECK(rpc(port, third.header("mcp-session-id"), R"({"jsonrpc":"2.0","id":1,"method":"ping"})").status == 404);
  CHECK(rpc(port, fourth, R"({"jsonrpc":"2.0","id":1,"method":"ping"})").status == 200);
}

TEST_CASE("REST companion") {
  const int port = shared_server().port();
  auto r = request(port, "GET", "/ext/mcp_http/tools", {});
  REQUIRE(r.status == 200);
  auto doc = parse(r.body);
  CHECK(doc["count"].GetInt() == static_cast<int>(doc["tools"].Size()));
  bool found = false;
  for (auto& t : doc["tools"].GetArray()) {
    if (std::string(t["name"].GetString()) == "ext.mcp_conformance.echo") {
      found = true;
      CHECK(std::string(t["mcp_name"].GetString()) == "echo");
      CHECK(std::string(t["owner"].GetString()) == "mcp_conformance");
      CHECK(t["output_schema"].IsObject());
    }
  }
  CHECK(found);

  r = request(port, "GET", "/ext/mcp_http/tools/ext.mcp_conformance.echo/schema", {});
  REQUIRE(r.status == 200);
  CHECK(parse(r.body)["input_schema"]["required"][0] == "text");
  r = request(port, "GET", "/ext/mcp_http/tools/echo/schema", {});  // the MCP name works too
  CHECK(r.status == 200);
  r = request(port, "GET", "/ext/mcp_http/tools/nope/schema", {});
  CHECK(r.status == 404);
  CHECK(std::string(parse(r.body)["error"].GetString()) == "not_found");

  const HeaderList json = {{"Content-Type", "application/json"}};
  r = request(port, "POST", "/ext/mcp_http/invoke", json, R"({"tool":"echo","parameters":{"text":"rest"}})");
  REQUIRE(r.status == 200);
  doc = parse(r.body);
  CHECK(std::string(doc["tool"].GetString()) == "ext.mcp_conformance.echo");
  CHECK(std::string(doc["result"]["text"].GetString()) == "rest");
  r = request(port, "POST", "/ext/mcp_http/invoke", json, R"({"tool":"echo","parameters":{"text":1}})");
  CHECK(r.status == 400);
  CHECK(std::string(parse(r.body)["details"]["pointer"].GetString()) == "/text");
  r = request(port, "POST", "/ext/mcp_http/invoke", json, R"({"tool":"nope"})");
  CHECK(r.status == 404);
  r = request(port, "POST", "/ext/mcp_http/invoke", json, R"({"parameters":{}})");
  CHECK(r.status == 400);
  r = request(port, "POST", "/ext/mcp_http/invoke", json, R"({"tool":"test_error_handling"})");
  CHECK(r.status == 500);
  CHECK(std::string(parse(r.body)["error"].GetString()) == "tool_failed");
}

TEST_CASE("concurrent POSTs on one session") {
  const int port = shared_server().port();
  const std::string session = open_session(port);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        const std::string text = "t" + std::to_string(t) + "-" + std::to_string(i);
        auto r = rpc(port, session, call_body(t * 1000 + i, "echo", R"({"text":")" + text + R"("})"));
        auto doc = ordinaut::json::parse(r.body);
        if (r.status == 200 && doc && std::string((*doc)["result"]["structuredContent"]["text"].GetString()) == text) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(ok.load() == 200);
}

using server_test::rss_kib;

// ---- issue 13: hostile clients ---------------------------------------------------

TEST_CASE("an initialize flood never locks new clients out, and one address cannot take every session") {
  Server server({}, {{"ORDINAUT_MCP_MAX_SESSIONS", "50"}, {"ORDINAUT_MCP_MAX_SESSIONS_PER_CLIENT", "20"}});
  const int port = server.port();
  for (int i = 0; i < 200; ++i) {
    auto r = request(port, "POST", kPath, rpc_headers({}, {}), init_body());
    REQUIRE(r.status == 200);
  }
  // Every session came from 127.0.0.1: at most 20 of them are kept.
  auto health = parse(request(port, "GET", "/ext/mcp_http/health", {}).body);
  INFO(ordinaut::json::dump(health));
  const auto& sessions = health["checks"]["sessions"];
  CHECK(sessions["open"].GetUint64() == 20);
  CHECK(sessions["limit_per_client"].GetUint64() == 20);
  CHECK(sessions["evicted"].GetUint64() == 180);
  // A new client still gets a session that works.
  const std::string fresh = open_session(port);
  CHECK(rpc(port, fresh, R"({"jsonrpc":"2.0","id":1,"method":"ping"})").status == 200);
}

TEST_CASE("clientInfo fields longer than the cap are refused; memory stays bounded") {
  Server server({}, {server_test::small_asan_quarantine()});
  const int port = server.port();
  auto init_named = [&](const std::string& name) {
    return request(port, "POST", kPath, rpc_headers({}, {}),
                   R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",)"
                   R"("capabilities":{},"clientInfo":{"name":")" + name + R"(","version":"1.0"}}})");
  };
  auto ok = init_named(std::string(256, 'n'));
  CHECK(ok.status == 200);
  CHECK(ok.header("mcp-session-id").size() == 32);
  auto refused = init_named(std::string(257, 'n'));
  CHECK(refused.header("mcp-session-id").empty());
  auto doc = parse(refused.body);
  CHECK(error_code(doc) == -32602);
  CHECK(std::string(doc["error"]["message"].GetString()) ==
        "Invalid params: params.clientInfo.name is 257 bytes long; at most 256 bytes are accepted");

  // Issue 13: 300 sessions with a 1000 KiB name took the RSS from 108 to 405 MiB.
  const std::string huge(1000 * 1024, 'n');
  for (int i = 0; i < 20; ++i) REQUIRE(init_named(huge).header("mcp-session-id").empty());  // warm-up
  const std::size_t before = rss_kib(server.pid());
  for (int i = 0; i < 300; ++i) REQUIRE(init_named(huge).header("mcp-session-id").empty());
  const std::size_t after = rss_kib(server.pid());
  INFO("RSS before " << before << " KiB, after " << after << " KiB");
  CHECK(before > 0);
  CHECK(after < before + 32 * 1024);  // was +297 MiB
}

TEST_CASE("an id of invalid UTF-8 is refused at input, never echoed raw") {
  const int port = shared_server().port();
  const std::string session = open_session(port);
  auto r = rpc(port, session, "{\"jsonrpc\":\"2.0\",\"id\":\"\xff\xfe\",\"method\":\"ping\"}");
  CHECK(r.status == 400);
  CHECK(r.body.find('\xff') == std::string::npos);
  CHECK(ordinaut::json::parse(r.body).ok());  // the strict parse refuses invalid UTF-8
  auto doc = parse(r.body);
  CHECK(error_code(doc) == -32700);
  CHECK(doc["id"].IsNull());
  CHECK(std::string(doc["error"]["message"].GetString()).find("invalid UTF-8 at offset 23") != std::string::npos);
}

TEST_CASE("a capability missing inside a tool is 403 forbidden with missing_capability on every path") {
  // mcp_denied asks for the event publisher without EVENTS_PUB in its route
  // and in its tool: all three paths name the capability the same way.
  Server server({"--ext-path", env_or_throw("MCP_DENIED_EXT_PATH")});
  const int port = server.port();
  const HeaderList json_headers = {{"Content-Type", "application/json"}};

  auto route = request(port, "POST", "/ext/mcp_denied/publish", json_headers, "{}");
  CHECK(route.status == 403);
  Json route_doc = parse(route.body);
  CHECK(std::string(route_doc["error"].GetString()) == "forbidden");
  CHECK(std::string(route_doc["details"]["missing_capability"].GetString()) == "EVENTS_PUB");

  auto rest = request(port, "POST", "/ext/mcp_http/invoke", json_headers,
                      R"({"tool":"ext.mcp_denied.publish","parameters":{}})");
  CHECK(rest.status == 403);
  Json rest_doc = parse(rest.body);
  CHECK(std::string(rest_doc["error"].GetString()) == "forbidden");
  CHECK(std::string(rest_doc["details"]["missing_capability"].GetString()) == "EVENTS_PUB");
  CHECK(std::string(rest_doc["details"]["tool"].GetString()) == "ext.mcp_denied.publish");

  const std::string session = open_session(port);
  auto mcp = rpc(port, session, call_body(7, "ext.mcp_denied.publish"));
  REQUIRE(mcp.status == 200);
  Json mcp_doc = parse(mcp.body);
  REQUIRE(mcp_doc.HasMember("result"));
  const auto& result = mcp_doc["result"];
  CHECK(result["isError"].GetBool());
  REQUIRE(result.HasMember("_meta"));
  const auto& meta = result["_meta"]["io.ordinaut/error"];
  CHECK(std::string(meta["code"].GetString()) == "forbidden");
  CHECK(std::string(meta["missing_capability"].GetString()) == "EVENTS_PUB");
  CHECK(std::string(result["content"][0]["text"].GetString()).find("EVENTS_PUB") != std::string::npos);
}

TEST_CASE("REST tool errors: bad JSON names its position, a tool's own error keeps its status and code") {
  Server server;
  const int port = server.port();
  const HeaderList json_headers = {{"Content-Type", "application/json"}};
  auto bad = request(port, "POST", "/ext/mcp_http/invoke", json_headers, "{\n  \"tool\": ext\n}");
  CHECK(bad.status == 400);
  Json bad_doc = parse(bad.body);
  CHECK(std::string(bad_doc["details"]["code"].GetString()) == "invalid_json");
  CHECK(bad_doc["details"]["line"].GetUint64() == 2);
  CHECK(bad_doc["details"]["column"].GetUint64() == 11);
  CHECK(bad_doc["details"].HasMember("offset"));

  // The scheduler's tool errors keep the status of its own routes: an unknown
  // task is 404, a bad cron 400 with the scheduler's code and the pointer.
  auto missing = request(port, "POST", "/ext/mcp_http/invoke", json_headers,
                         R"({"tool":"ext.scheduler.get_task","parameters":{"id":"tsk_nope"}})");
  CHECK(missing.status == 404);
  CHECK(std::string(parse(missing.body)["error"].GetString()) == "not_found");
  auto cron = request(port, "POST", "/ext/mcp_http/invoke", json_headers,
                      R"({"tool":"ext.scheduler.create_task","parameters":{"title":"t","schedule_kind":"cron","schedule_expr":"61 * * * *"}})");
  CHECK(cron.status == 400);
  Json cron_doc = parse(cron.body);
  CHECK(std::string(cron_doc["error"].GetString()) == "bad_request");
  REQUIRE(cron_doc["details"].HasMember("pointer"));
  CHECK(std::string(cron_doc["details"]["pointer"].GetString()) == "/schedule_expr");
  CHECK(std::string(cron_doc["details"]["code"].GetString()) == "invalid_cron");
  CHECK(std::string(cron_doc["details"]["tool"].GetString()) == "ext.scheduler.create_task");
}
