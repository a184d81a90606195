// Raw-HTTP tests of mcp_http's resources, resource templates, prompts and
// completion against the real ordinaut-server with the test-only fixture
// (mcp_conformance: test://..., test_* prompts) and the host's own resources
// (ordinaut://host/...): every MCP method with its errors, pagination,
// subscriptions delivered on the GET stream and dropped with the session,
// list_changed when a lazy extension loads, scopes, and the REST companion.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <set>

#include <ordinaut/json.hpp>

#include "mcp_support.hpp"

using namespace mcp_test;
using ordinaut::Json;
using ordinaut::JsonValue;

namespace {

constexpr const char* kPath = "/ext/mcp_http/";
constexpr const char* kAccept = "application/json, text/event-stream";
// The fixture's 1x1 PNG, base64.
constexpr const char* kPng =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";

Server& shared_server() {
  static Server server;
  return server;
}

Json parse(const std::string& text) {
  auto doc = ordinaut::json::parse(text);
  if (!doc) FAIL("not JSON: " << text << " (" << doc.error().message << ")");
  return std::move(doc).value();
}

std::string str(const JsonValue& v) { return std::string(v.GetString(), v.GetStringLength()); }

HeaderList rpc_headers(const std::string& session, const HeaderList& extra = {}) {
  HeaderList h = {{"Content-Type", "application/json"}, {"Accept", kAccept}};
  if (!session.empty()) {
    h.emplace_back("Mcp-Session-Id", session);
    h.emplace_back("MCP-Protocol-Version", "2025-11-25");
  }
  for (const auto& e : extra) h.push_back(e);
  return h;
}

std::string open_session(int port, const HeaderList& extra = {}) {
  auto r = request(port, "POST", kPath, rpc_headers({}, extra),
                   R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",)"
                   R"("capabilities":{},"clientInfo":{"name":"content-test","version":"1.0"}}})");
  REQUIRE(r.status == 200);
  const std::string session = r.header("mcp-session-id");
  REQUIRE(!session.empty());
  auto n = request(port, "POST", kPath, rpc_headers(session, extra),
                   R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  REQUIRE(n.status == 202);
  return session;
}

/// One request; the parsed JSON-RPC response.
Json call(int port, const std::string& session, const std::string& method, const std::string& params = "{}",
          const HeaderList& extra = {}) {
  auto r = request(port, "POST", kPath, rpc_headers(session, extra),
                   R"({"jsonrpc":"2.0","id":7,"method":")" + method + R"(","params":)" + params + "}");
  REQUIRE(r.status == 200);
  return parse(r.body);
}

int error_code(const Json& doc) {
  REQUIRE(doc.HasMember("error"));
  return doc["error"]["code"].GetInt();
}

std::string error_message(const Json& doc) { return str(doc["error"]["message"]); }

/// Every entry of a paginated list, following nextCursor; `pages` counts them.
std::vector<std::string> list_all(int port, const std::string& session, const std::string& method,
                                  const char* list, const char* key, int* pages = nullptr) {
  std::vector<std::string> out;
  std::string cursor;
  int n = 0;
  do {
    Json doc = call(port, session, method, cursor.empty() ? "{}" : R"({"cursor":")" + cursor + R"("})");
    REQUIRE(doc.HasMember("result"));
    for (const auto& item : doc["result"][list].GetArray()) out.push_back(str(item[key]));
    cursor = doc["result"].HasMember("nextCursor") ? str(doc["result"]["nextCursor"]) : "";
    ++n;
  } while (!cursor.empty() && n < 50);
  if (pages) *pages = n;
  return out;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

/// The next JSON-RPC message on a GET stream whose method is `method`
/// (others skipped); nullopt when the stream ends or nothing comes in time.
std::optional<Json> next_notification(Connection& stream, const std::string& method) {
  const auto deadline = Clock::now() + 10s;
  while (Clock::now() < deadline) {
    auto event = stream.next_event(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    if (!event) return std::nullopt;
    Json doc = parse(*event);
    if (doc.HasMember("method") && str(doc["method"]) == method) return doc;
  }
  return std::nullopt;
}

Json rest(int port, const std::string& method, const std::string& path, const std::string& body, int expected,
          const HeaderList& extra = {}) {
  HeaderList h = {{"Content-Type", "application/json"}};
  for (const auto& e : extra) h.push_back(e);
  auto r = request(port, method, path, h, body);
  CHECK_MESSAGE(r.status == expected, method << " " << path << " " << body << " → " << r.status << " " << r.body);
  return parse(r.body);
}

}  // namespace

TEST_CASE("initialize declares resources (subscribe, listChanged), prompts and completions") {
  const int port = shared_server().port();
  auto r = request(port, "POST", kPath, rpc_headers({}),
                   R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",)"
                   R"("capabilities":{},"clientInfo":{"name":"content-test","version":"1.0"}}})");
  REQUIRE(r.status == 200);
  Json doc = parse(r.body);
  const JsonValue& caps = doc["result"]["capabilities"];
  CHECK(caps["resources"]["subscribe"].GetBool());
  CHECK(caps["resources"]["listChanged"].GetBool());
  CHECK(caps["prompts"]["listChanged"].GetBool());
  CHECK(caps["completions"].IsObject());
  CHECK(caps["tools"]["listChanged"].GetBool());
}

TEST_CASE("resources/list and resources/templates/list: the fixture's and the host's") {
  const int port = shared_server().port();
  const std::string session = open_session(port);
  Json doc = call(port, session, "resources/list");
  std::vector<std::string> uris;
  for (const auto& r : doc["result"]["resources"].GetArray()) {
    CHECK(r.HasMember("name"));
    CHECK_FALSE(r.HasMember("uriTemplate"));
    uris.push_back(str(r["uri"]));
    if (str(r["uri"]) == "test://static-binary") CHECK(str(r["mimeType"]) == "image/png");
  }
  for (const char* u : {"test://static-text", "test://static-binary", "test://watched-resource", "ordinaut://host/status"}) {
    CHECK_MESSAGE(contains(uris, u), u);
  }
  CHECK(std::is_sorted(uris.begin(), uris.end()));
  CHECK_FALSE(doc["result"].HasMember("nextCursor"));

  doc = call(port, session, "resources/templates/list");
  std::vector<std::string> templates;
  for (const auto& t : doc["result"]["resourceTemplates"].GetArray()) {
    CHECK(t.HasMember("name"));
    templates.push_back(str(t["uriTemplate"]));
  }
  CHECK(contains(templates, "test://template/{id}/data"));
  CHECK(contains(templates, "ordinaut://host/extensions/{id}"));
  CHECK(error_code(call(port, session, "resources/list", R"({"cursor":"zzz"})")) == -32602);
  CHECK(error_code(call(port, session, "resources/templates/list", R"({"cursor":5})")) == -32602);
}

TEST_CASE("resources/read: text, binary, template, host status, and the errors") {
  const int port = shared_server().port();
  const std::string session = open_session(port);
  Json doc = call(port, session, "resources/read", R"({"uri":"test://static-text"})");
  REQUIRE(doc["result"]["contents"].Size() == 1);
  const JsonValue& text = doc["result"]["contents"][0];
  CHECK(str(text["uri"]) == "test://static-text");
  CHECK(str(text["mimeType"]) == "text/plain");
  CHECK(str(text["text"]) == "This is the content of the static text resource.");

  doc = call(port, session, "resources/read", R"({"uri":"test://static-binary"})");
  const JsonValue& blob = doc["result"]["contents"][0];
  CHECK(str(blob["mimeType"]) == "image/png");
  CHECK(str(blob["blob"]) == kPng);  // raw bytes in the registry, base64 on the wire
  CHECK_FALSE(blob.HasMember("text"));

  doc = call(port, session, "resources/read", R"({"uri":"test://template/123/data"})");
  const JsonValue& templ = doc["result"]["contents"][0];
  CHECK(str(templ["uri"]) == "test://template/123/data");
  CHECK(str(templ["mimeType"]) == "application/json");
  Json data = parse(str(templ["text"]));
  CHECK(str(data["id"]) == "123");
  CHECK(data["templateTest"].GetBool());

  doc = call(port, session, "resources/read", R"({"uri":"ordinaut://host/status"})");
  Json status = parse(str(doc["result"]["contents"][0]["text"]));
  CHECK(status["extensions"].HasMember("mcp_conformance"));
  doc = call(port, session, "resources/read", R"({"uri":"ordinaut://host/extensions/mcp_conformance"})");
  CHECK(str(parse(str(doc["result"]["contents"][0]["text"]))["state"]) == "active");

  // Unknown: -32002 with data.uri (MCP's "Resource not found").
  doc = call(port, session, "resources/read", R"({"uri":"test://nope"})");
  CHECK(error_code(doc) == -32002);
  CHECK(str(doc["error"]["data"]["uri"]) == "test://nope");
  doc = call(port, session, "resources/read", R"({"uri":"ordinaut://host/extensions/nope"})");
  CHECK(error_code(doc) == -32002);
  // Malformed params: -32602.
  CHECK(error_code(call(port, session, "resources/read", "{}")) == -32602);
  CHECK(error_code(call(port, session, "resources/read", R"({"uri":3})")) == -32602);
  // A read that fails: -32603 with its message and code.
  doc = call(port, session, "resources/read", R"({"uri":"test://error"})");
  CHECK(error_code(doc) == -32603);
  CHECK(error_message(doc).find("intentionally fails") != std::string::npos);
  CHECK(str(doc["error"]["data"]["code"]) == "test_failure");
}

TEST_CASE("prompts/list and prompts/get under short names, and the errors") {
  const int port = shared_server().port();
  const std::string session = open_session(port);
  Json doc = call(port, session, "prompts/list");
  std::vector<std::string> names;
  for (const auto& p : doc["result"]["prompts"].GetArray()) {
    CHECK(p.HasMember("description"));
    names.push_back(str(p["name"]));
    if (str(p["name"]) == "test_prompt_with_arguments") {
      REQUIRE(p["arguments"].Size() == 2);
      CHECK(str(p["arguments"][0]["name"]) == "arg1");
      CHECK(p["arguments"][0]["required"].GetBool());
    }
  }
  for (const char* n : {"test_simple_prompt", "test_prompt_with_arguments", "test_prompt_with_embedded_resource",
                        "test_prompt_with_image"}) {
    CHECK_MESSAGE(contains(names, n), n);
  }

  doc = call(port, session, "prompts/get", R"({"name":"test_simple_prompt"})");
  CHECK(str(doc["result"]["messages"][0]["role"]) == "user");
  CHECK(str(doc["result"]["messages"][0]["content"]["text"]) == "This is a simple prompt for testing.");
  // The registry name works as well.
  doc = call(port, session, "prompts/get", R"({"name":"ext.mcp_conformance.test_simple_prompt"})");
  CHECK(doc.HasMember("result"));

  doc = call(port, session, "prompts/get",
             R"({"name":"test_prompt_with_arguments","arguments":{"arg1":"hello","arg2":"world"}})");
  CHECK(str(doc["result"]["messages"][0]["content"]["text"]) == "Prompt with arguments: arg1='hello', arg2='world'");

  doc = call(port, session, "prompts/get",
             R"({"name":"test_prompt_with_embedded_resource","arguments":{"resourceUri":"test://example"}})");
  const JsonValue& embedded = doc["result"]["messages"][0]["content"];
  CHECK(str(embedded["type"]) == "resource");
  CHECK(str(embedded["resource"]["uri"]) == "test://example");
  CHECK(str(embedded["resource"]["text"]) == "Embedded resource content for testing.");

  doc = call(port, session, "prompts/get", R"({"name":"test_prompt_with_image"})");
  const JsonValue& image = doc["result"]["messages"][0]["content"];
  CHECK(str(image["type"]) == "image");
  CHECK(str(image["mimeType"]) == "image/png");
  CHECK(str(image["data"]) == kPng);

  // A missing required argument, an unknown one, a non-string one: -32602 naming it.
  doc = call(port, session, "prompts/get", R"({"name":"test_prompt_with_arguments","arguments":{"arg1":"x"}})");
  CHECK(error_code(doc) == -32602);
  CHECK(error_message(doc).find("arg2") != std::string::npos);
  doc = call(port, session, "prompts/get",
             R"({"name":"test_prompt_with_arguments","arguments":{"arg1":"x","arg2":"y","arg3":"z"}})");
  CHECK(error_code(doc) == -32602);
  CHECK(error_message(doc).find("arg3") != std::string::npos);
  doc = call(port, session, "prompts/get", R"({"name":"test_prompt_with_arguments","arguments":{"arg1":1}})");
  CHECK(error_code(doc) == -32602);
  CHECK(error_message(doc).find("arguments.arg1") != std::string::npos);
  // Unknown prompts: -32602 with data.prompt, also for an unknown ext.* name.
  doc = call(port, session, "prompts/get", R"({"name":"nope"})");
  CHECK(error_code(doc) == -32602);
  CHECK(str(doc["error"]["data"]["prompt"]) == "nope");
  CHECK(error_code(call(port, session, "prompts/get", R"({"name":"ext.nobody.nope"})")) == -32602);
  CHECK(error_code(call(port, session, "prompts/get", "{}")) == -32602);
}

TEST_CASE("completion/complete for prompt arguments and template variables") {
  const int port = shared_server().port();
  const std::string session = open_session(port);
  Json doc = call(port, session, "completion/complete",
                  R"({"ref":{"type":"ref/prompt","name":"test_prompt_with_arguments"},)"
                  R"("argument":{"name":"arg1","value":"par"}})");
  const JsonValue& c = doc["result"]["completion"];
  REQUIRE(c["values"].Size() == 3);
  CHECK(str(c["values"][0]) == "paris");
  CHECK(c["total"].GetInt() == 3);
  CHECK_FALSE(c["hasMore"].GetBool());
  doc = call(port, session, "completion/complete",
             R"({"ref":{"type":"ref/prompt","name":"test_prompt_with_arguments"},)"
             R"("argument":{"name":"arg1","value":"zzz"},"context":{"arguments":{"arg2":"x"}}})");
  CHECK(doc["result"]["completion"]["values"].Size() == 0);

  doc = call(port, session, "completion/complete",
             R"({"ref":{"type":"ref/resource","uri":"test://template/{id}/data"},"argument":{"name":"id","value":"1"}})");
  REQUIRE(doc["result"]["completion"]["values"].Size() == 2);
  CHECK(str(doc["result"]["completion"]["values"][1]) == "123");
  doc = call(port, session, "completion/complete",
             R"({"ref":{"type":"ref/resource","uri":"ordinaut://host/extensions/{id}"},)"
             R"("argument":{"name":"id","value":"mcp_c"}})");
  REQUIRE(doc["result"]["completion"]["values"].Size() == 1);
  CHECK(str(doc["result"]["completion"]["values"][0]) == "mcp_conformance");

  // Errors: unknown prompt or argument -32602, unknown template -32002, bad shapes -32602.
  CHECK(error_code(call(port, session, "completion/complete",
                        R"({"ref":{"type":"ref/prompt","name":"nope"},"argument":{"name":"a","value":""}})")) == -32602);
  CHECK(error_code(call(port, session, "completion/complete",
                        R"({"ref":{"type":"ref/prompt","name":"test_prompt_with_arguments"},)"
                        R"("argument":{"name":"arg9","value":""}})")) == -32602);
  CHECK(error_code(call(port, session, "completion/complete",
                        R"({"ref":{"type":"ref/resource","uri":"test://nope/{x}"},"argument":{"name":"x","value":""}})")) ==
        -32002);
  CHECK(error_code(call(port, session, "completion/complete",
                        R"({"ref":{"type":"ref/tool","name":"x"},"argument":{"name":"a","value":""}})")) == -32602);
  CHECK(error_code(call(port, session, "completion/complete", R"({"ref":{"type":"ref/prompt","name":"x"}})")) ==
        -32602);
}

TEST_CASE("tools/list carries tool annotations") {
  const int port = shared_server().port();
  const std::string session = open_session(port);
  Json doc = call(port, session, "tools/list");
  bool seen = false;
  for (const auto& t : doc["result"]["tools"].GetArray()) {
    if (str(t["name"]) != "echo") continue;
    seen = true;
    REQUIRE(t.HasMember("annotations"));
    CHECK(t["annotations"]["readOnlyHint"].GetBool());
    CHECK_FALSE(t["annotations"]["openWorldHint"].GetBool());
  }
  CHECK(seen);
}

TEST_CASE("pagination of resources, templates and prompts") {
  Server server({}, {{"ORDINAUT_MCP_PAGE_SIZE", "2"}});
  const int port = server.port();
  const std::string session = open_session(port);
  int pages = 0;
  auto uris = list_all(port, session, "resources/list", "resources", "uri", &pages);
  CHECK(uris.size() >= 5);
  CHECK(pages == static_cast<int>((uris.size() + 1) / 2));  // pages of 2, no empty last page
  CHECK(std::set<std::string>(uris.begin(), uris.end()).size() == uris.size());
  CHECK(std::is_sorted(uris.begin(), uris.end()));
  CHECK(contains(uris, "test://watched-resource"));
  auto templates = list_all(port, session, "resources/templates/list", "resourceTemplates", "uriTemplate");
  CHECK(contains(templates, "test://template/{id}/data"));
  auto prompts = list_all(port, session, "prompts/list", "prompts", "name", &pages);
  CHECK(prompts.size() >= 4);
  CHECK(pages >= 2);
  CHECK(std::is_sorted(prompts.begin(), prompts.end()));
  CHECK(error_code(call(port, session, "prompts/list", R"({"cursor":"zzz"})")) == -32602);
}

TEST_CASE("resources/subscribe: updates on the GET stream until unsubscribe or session end") {
  Server server;
  const int port = server.port();
  const std::string session = open_session(port);
  Connection stream(port, "GET", kPath, {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}});
  REQUIRE(stream.head().status == 200);

  Json doc = call(port, session, "resources/subscribe", R"({"uri":"test://watched-resource"})");
  REQUIRE(doc.HasMember("result"));
  CHECK(doc["result"].ObjectEmpty());
  // Subscribing twice keeps one subscription.
  CHECK(call(port, session, "resources/subscribe", R"({"uri":"test://watched-resource"})").HasMember("result"));
  // A URI that only a template matches can be watched too.
  CHECK(call(port, session, "resources/subscribe", R"({"uri":"test://template/5/data"})").HasMember("result"));

  const std::string bump = R"({"name":"bump_watched","arguments":{}})";
  doc = call(port, session, "tools/call", bump);
  CHECK(doc["result"]["structuredContent"]["notified"].GetInt() == 1);
  auto updated = next_notification(stream, "notifications/resources/updated");
  REQUIRE(updated);
  CHECK(str((*updated)["params"]["uri"]) == "test://watched-resource");
  doc = call(port, session, "resources/read", R"({"uri":"test://watched-resource"})");
  CHECK(str(doc["result"]["contents"][0]["text"]).find("version 2") != std::string::npos);

  // Unsubscribed: nobody is told any more (and unsubscribing again is fine).
  CHECK(call(port, session, "resources/unsubscribe", R"({"uri":"test://watched-resource"})").HasMember("result"));
  CHECK(call(port, session, "resources/unsubscribe", R"({"uri":"test://watched-resource"})").HasMember("result"));
  CHECK(call(port, session, "tools/call", bump)["result"]["structuredContent"]["notified"].GetInt() == 0);

  // Errors: unknown URI -32002, malformed -32602.
  doc = call(port, session, "resources/subscribe", R"({"uri":"test://nope"})");
  CHECK(error_code(doc) == -32002);
  CHECK(str(doc["error"]["data"]["uri"]) == "test://nope");
  CHECK(error_code(call(port, session, "resources/subscribe", "{}")) == -32602);
  CHECK(error_code(call(port, session, "resources/unsubscribe", R"({"uri":false})")) == -32602);

  // Two sessions subscribed; DELETE of one drops its subscriptions.
  const std::string other = open_session(port);
  CHECK(call(port, session, "resources/subscribe", R"({"uri":"test://watched-resource"})").HasMember("result"));
  CHECK(call(port, other, "resources/subscribe", R"({"uri":"test://watched-resource"})").HasMember("result"));
  CHECK(call(port, other, "tools/call", bump)["result"]["structuredContent"]["notified"].GetInt() == 2);
  CHECK(request(port, "DELETE", kPath, rpc_headers(session)).status == 200);
  CHECK(call(port, other, "tools/call", bump)["result"]["structuredContent"]["notified"].GetInt() == 1);
}

TEST_CASE("list_changed for resources and prompts when a lazy extension loads") {
  Server server;  // of its own: mcp_lazy must not be loaded yet
  const int port = server.port();
  const std::string session = open_session(port);
  Connection stream(port, "GET", kPath, {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}});
  REQUIRE(stream.head().status == 200);
  CHECK_FALSE(contains(list_all(port, session, "resources/list", "resources", "uri"), "ext://mcp_lazy/greeting"));
  CHECK_FALSE(contains(list_all(port, session, "prompts/list", "prompts", "name"), "ext.mcp_lazy.greet"));

  CHECK(call(port, session, "tools/call", R"({"name":"ext.mcp_lazy.hello"})").HasMember("result"));
  std::set<std::string> seen;
  const auto deadline = Clock::now() + 10s;
  while (seen.size() < 3 && Clock::now() < deadline) {
    auto event = stream.next_event(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    if (!event) break;
    seen.insert(str(parse(*event)["method"]));
  }
  CHECK(seen.count("notifications/tools/list_changed") == 1);
  CHECK(seen.count("notifications/resources/list_changed") == 1);
  CHECK(seen.count("notifications/prompts/list_changed") == 1);
  CHECK(contains(list_all(port, session, "resources/list", "resources", "uri"), "ext://mcp_lazy/greeting"));
  CHECK(contains(list_all(port, session, "prompts/list", "prompts", "name"), "ext.mcp_lazy.greet"));
  Json doc = call(port, session, "prompts/get", R"({"name":"ext.mcp_lazy.greet"})");
  CHECK(str(doc["result"]["messages"][0]["content"]["text"]) == "Say hello");
}

TEST_CASE("scopes: resource:{uri} and prompt:{name}, listings filtered") {
  Server server({"--require-scopes"});
  const int port = server.port();
  const HeaderList mcp = {{"X-Scopes", "ext:mcp_http:routes,ext:mcp_http:mcp"}};
  const std::string session = open_session(port, mcp);
  // Without resource or prompt scopes: nothing listed, nothing readable.
  CHECK(call(port, session, "resources/list", "{}", mcp)["result"]["resources"].Size() == 0);
  CHECK(call(port, session, "resources/templates/list", "{}", mcp)["result"]["resourceTemplates"].Size() == 0);
  CHECK(call(port, session, "prompts/list", "{}", mcp)["result"]["prompts"].Size() == 0);
  Json doc = call(port, session, "resources/read", R"({"uri":"test://static-text"})", mcp);
  CHECK(error_code(doc) == -32602);
  CHECK(str(doc["error"]["data"]["required_scope"]) == "resource:test://static-text");
  doc = call(port, session, "prompts/get", R"({"name":"test_simple_prompt"})", mcp);
  CHECK(error_code(doc) == -32602);
  CHECK(str(doc["error"]["data"]["required_scope"]) == "prompt:ext.mcp_conformance.test_simple_prompt");
  CHECK(error_code(call(port, session, "resources/subscribe", R"({"uri":"test://watched-resource"})", mcp)) ==
        -32602);
  CHECK(error_code(call(port, session, "completion/complete",
                        R"({"ref":{"type":"ref/prompt","name":"test_prompt_with_arguments"},)"
                        R"("argument":{"name":"arg1","value":""}})",
                        mcp)) == -32602);

  const HeaderList some = {{"X-Scopes", "ext:mcp_http:routes,ext:mcp_http:mcp,resource:test://static-*,"
                                        "resource:test://template/1/data,prompt:ext.mcp_conformance.test_simple_prompt"}};
  doc = call(port, session, "resources/list", "{}", some);
  std::vector<std::string> uris;
  for (const auto& r : doc["result"]["resources"].GetArray()) uris.push_back(str(r["uri"]));
  CHECK(uris == std::vector<std::string>{"test://static-binary", "test://static-text"});
  doc = call(port, session, "resources/templates/list", "{}", some);
  REQUIRE(doc["result"]["resourceTemplates"].Size() == 1);  // resource:test://template/1/data matches it
  CHECK(str(doc["result"]["resourceTemplates"][0]["uriTemplate"]) == "test://template/{id}/data");
  CHECK(call(port, session, "resources/read", R"({"uri":"test://static-text"})", some).HasMember("result"));
  CHECK(call(port, session, "resources/read", R"({"uri":"test://template/1/data"})", some).HasMember("result"));
  CHECK(error_code(call(port, session, "resources/read", R"({"uri":"test://template/2/data"})", some)) == -32602);
  doc = call(port, session, "prompts/list", "{}", some);
  REQUIRE(doc["result"]["prompts"].Size() == 1);
  CHECK(str(doc["result"]["prompts"][0]["name"]) == "test_simple_prompt");
  CHECK(call(port, session, "prompts/get", R"({"name":"test_simple_prompt"})", some).HasMember("result"));
  CHECK(error_code(call(port, session, "prompts/get", R"({"name":"test_prompt_with_image"})", some)) == -32602);

  const HeaderList all = {{"X-Scopes", "ext:mcp_http:routes,ext:mcp_http:mcp,resource:*,prompt:*"}};
  CHECK(call(port, session, "resources/list", "{}", all)["result"]["resources"].Size() >= 5);
  CHECK(call(port, session, "prompts/list", "{}", all)["result"]["prompts"].Size() >= 4);

  // REST: the same scopes (the mcp scope is not needed).
  const HeaderList rest_some = {{"X-Scopes", "ext:mcp_http:routes,resource:test://static-text"}};
  doc = rest(port, "GET", "/ext/mcp_http/resources", "", 200, rest_some);
  CHECK(doc["count"].GetInt() == 1);
  doc = rest(port, "POST", "/ext/mcp_http/read", R"({"uri":"test://static-binary"})", 403, rest_some);
  CHECK(str(doc["error"]) == "forbidden");
  CHECK(str(doc["details"]["required_scope"]) == "resource:test://static-binary");
  rest(port, "POST", "/ext/mcp_http/read", R"({"uri":"test://static-text"})", 200, rest_some);
  CHECK(rest(port, "GET", "/ext/mcp_http/prompts", "", 200, rest_some)["count"].GetInt() == 0);
  rest(port, "POST", "/ext/mcp_http/prompt", R"({"prompt":"test_simple_prompt"})", 403, rest_some);
}

TEST_CASE("REST companion: resources, templates, read, prompts, prompt, complete") {
  const int port = shared_server().port();
  Json doc = rest(port, "GET", "/ext/mcp_http/resources", "", 200);
  CHECK(doc["count"].GetInt() == static_cast<int>(doc["resources"].Size()));
  bool found = false;
  for (const auto& r : doc["resources"].GetArray()) {
    if (str(r["uri"]) != "test://static-text") continue;
    found = true;
    CHECK(str(r["owner"]) == "mcp_conformance");
    CHECK(str(r["mime_type"]) == "text/plain");
    CHECK_FALSE(r["declared"].GetBool());
  }
  CHECK(found);
  doc = rest(port, "GET", "/ext/mcp_http/resources/templates", "", 200);
  found = false;
  for (const auto& t : doc["templates"].GetArray()) found = found || str(t["uri_template"]) == "ordinaut://host/extensions/{id}";
  CHECK(found);

  doc = rest(port, "POST", "/ext/mcp_http/read", R"({"uri":"test://static-binary"})", 200);
  CHECK(str(doc["uri"]) == "test://static-binary");
  CHECK(str(doc["contents"][0]["blob"]) == kPng);
  doc = rest(port, "POST", "/ext/mcp_http/read", R"({"uri":"test://nope"})", 404);
  CHECK(str(doc["error"]) == "not_found");
  CHECK(str(doc["details"]["uri"]) == "test://nope");
  doc = rest(port, "POST", "/ext/mcp_http/read", R"({"uri":"test://error"})", 500);
  CHECK(str(doc["error"]) == "read_failed");
  CHECK(str(doc["details"]["code"]) == "test_failure");
  rest(port, "POST", "/ext/mcp_http/read", R"({"url":"x"})", 400);

  doc = rest(port, "GET", "/ext/mcp_http/prompts", "", 200);
  found = false;
  for (const auto& p : doc["prompts"].GetArray()) {
    if (str(p["name"]) != "ext.mcp_conformance.test_prompt_with_arguments") continue;
    found = true;
    CHECK(str(p["mcp_name"]) == "test_prompt_with_arguments");
    CHECK(p["arguments"].Size() == 2);
  }
  CHECK(found);
  doc = rest(port, "POST", "/ext/mcp_http/prompt",
             R"({"prompt":"test_prompt_with_arguments","arguments":{"arg1":"a","arg2":"b"}})", 200);
  CHECK(str(doc["prompt"]) == "ext.mcp_conformance.test_prompt_with_arguments");
  CHECK(str(doc["result"]["messages"][0]["content"]["text"]) == "Prompt with arguments: arg1='a', arg2='b'");
  doc = rest(port, "POST", "/ext/mcp_http/prompt", R"({"prompt":"test_prompt_with_arguments"})", 400);
  CHECK(str(doc["error"]) == "bad_request");
  rest(port, "POST", "/ext/mcp_http/prompt", R"({"prompt":"nope"})", 404);

  doc = rest(port, "POST", "/ext/mcp_http/complete",
             R"({"ref":{"type":"ref/prompt","name":"test_prompt_with_arguments"},"argument":{"name":"arg1","value":"pa"}})",
             200);
  CHECK(doc["completion"]["values"].Size() == 3);
  rest(port, "POST", "/ext/mcp_http/complete",
       R"({"ref":{"type":"ref/resource","uri":"test://nope/{x}"},"argument":{"name":"x","value":""}})", 404);
  rest(port, "POST", "/ext/mcp_http/complete", R"({"ref":{"type":"ref/prompt","name":"x"}})", 400);
}
