// Router templates and matching, plus the small HTTP helpers.
#include <doctest/doctest.h>

#include <ordinaut/http.hpp>

#include "support.hpp"

using ordinaut::PathParams;
using ordinaut::Request;
using ordinaut::Response;
using ordinaut::Router;

namespace {

ordinaut::Handler named(std::string name) {
  return [name](Request&) { return Response::text(200, name); };
}

// Runs the matched handler, or returns "-" (no match) / "405 <allow>".
std::string dispatch(const Router& router, std::string method, std::string path, PathParams* out = nullptr) {
  PathParams params;
  auto m = router.match(method, path, params);
  if (out) *out = params;
  if (m.route_index < 0) return m.path_matched ? "405 " + m.allow : "-";
  Request r;
  r.params = params;
  return router.routes()[static_cast<std::size_t>(m.route_index)].handler(r).body;
}

}  // namespace

TEST_CASE("router: static templates, the root and trailing slashes") {
  Router router;
  router.get("/", named("root")).get("/items", named("items")).get("/items/new", named("new"));
  CHECK(dispatch(router, "GET", "/") == "root");
  CHECK(dispatch(router, "GET", "") == "root");
  CHECK(dispatch(router, "GET", "/items") == "items");
  CHECK(dispatch(router, "GET", "/items/new") == "new");
  CHECK(dispatch(router, "GET", "/items/") == "-");
  CHECK(dispatch(router, "GET", "/items/new/x") == "-");
  CHECK(dispatch(router, "GET", "/Items") == "-");
  CHECK(dispatch(router, "GET", "/other") == "-");
}

TEST_CASE("router: parameters are captured and percent-decoded") {
  Router router;
  router.get("/items/{id}", named("item")).get("/users/{user}/posts/{post_id}", named("post"));
  PathParams p;
  CHECK(dispatch(router, "GET", "/items/42", &p) == "item");
  REQUIRE(p.size() == 1);
  CHECK(p[0] == std::pair<std::string, std::string>{"id", "42"});

  CHECK(dispatch(router, "GET", "/items/caf%C3%A9%20au%20lait", &p) == "item");
  CHECK(p[0].second == "café au lait");
  // A single parameter may hold an encoded slash: it stays one value.
  CHECK(dispatch(router, "GET", "/items/a%2Fb", &p) == "item");
  CHECK(p[0].second == "a/b");
  // '+' is not a space in a path.
  CHECK(dispatch(router, "GET", "/items/a+b", &p) == "item");
  CHECK(p[0].second == "a+b");

  CHECK(dispatch(router, "GET", "/users/ana/posts/7", &p) == "post");
  REQUIRE(p.size() == 2);
  CHECK(p[0] == std::pair<std::string, std::string>{"user", "ana"});
  CHECK(p[1] == std::pair<std::string, std::string>{"post_id", "7"});

  CHECK(dispatch(router, "GET", "/items/", &p) == "-");  // empty parameter
  CHECK(p.empty());
  CHECK(dispatch(router, "GET", "/items/%zz") == "-");   // malformed escape
  CHECK(dispatch(router, "GET", "/items/%4") == "-");
}

TEST_CASE("router: request.param reads decoded values") {
  Request r;
  r.params = {{"id", "7"}, {"name", "x y"}};
  CHECK(r.param("id") == "7");
  CHECK(r.param("name") == "x y");
  CHECK(r.param("absent").empty());
}

TEST_CASE("router: {path...} captures the rest, segment by segment") {
  Router router;
  router.get("/files/{path...}", named("files"));
  PathParams p;
  CHECK(dispatch(router, "GET", "/files/a/b/c.txt", &p) == "files");
  CHECK(p[0] == std::pair<std::string, std::string>{"path", "a/b/c.txt"});
  CHECK(dispatch(router, "GET", "/files/dir%20x/y%41", &p) == "files");
  CHECK(p[0].second == "dir x/yA");
  CHECK(dispatch(router, "GET", "/files/one", &p) == "files");
  CHECK(p[0].second == "one");
  CHECK(dispatch(router, "GET", "/other/a") == "-");
}

TEST_CASE("router: encoded separators inside a catch-all never match") {
  Router router;
  router.get("/files/{path...}", named("files"));
  for (const char* path : {"/files/a%2Fb", "/files/a%2fb", "/files/x/..%2F..%2Fetc%2Fpasswd", "/files/a%5Cb",
                           "/files/a%5cb", "/files/a%00b", "/files/%2F", "/files/ok/%zz"}) {
    CAPTURE(path);
    CHECK(dispatch(router, "GET", path) == "-");
  }
}

TEST_CASE("router: wrong method on a known path is a 405 with Allow") {
  Router router;
  router.get("/items", named("list")).post("/items", named("create")).del("/items/{id}", named("delete"));
  CHECK(dispatch(router, "POST", "/items") == "create");
  const std::string put = dispatch(router, "PUT", "/items");
  CHECK(put.starts_with("405 "));
  CHECK(put.find("GET") != std::string::npos);
  CHECK(put.find("POST") != std::string::npos);
  CHECK(dispatch(router, "GET", "/items/3") == "405 DELETE");
  CHECK(dispatch(router, "GET", "/nothing") == "-");
}

TEST_CASE("router: HEAD is served by GET routes; * matches any method") {
  Router router;
  router.get("/page", named("page")).add("*", "/any", named("any"));
  CHECK(dispatch(router, "HEAD", "/page") == "page");
  CHECK(dispatch(router, "DELETE", "/any") == "any");
  CHECK(dispatch(router, "PATCH", "/any") == "any");
  CHECK(dispatch(router, "POST", "/page") == "405 GET");
}

TEST_CASE("router: methods are upper-cased and the first matching route wins") {
  Router router;
  router.add("get", "/x/{id}", named("param")).add("GET", "/x/fixed", named("fixed"));
  CHECK(router.routes()[0].method == "GET");
  CHECK(dispatch(router, "GET", "/x/fixed") == "param");
}

TEST_CASE("router: malformed templates throw naming the route") {
  auto bad = [](std::string method, std::string path, const std::string& text) {
    Router router;
    CAPTURE(path);
    CHECK_THROWS_WITH_AS(router.add(method, path, named("x")), doctest::Contains(text.c_str()), std::invalid_argument);
    CHECK(router.empty());
  };
  bad("GET", "items", "must start with '/'");
  bad("GET", "", "must start with '/'");
  bad("", "/a", "method is empty");
  bad("GET", "/a//b", "empty path segment");
  bad("GET", "/a/{id", "must be a whole {param}");
  bad("GET", "/a/id}", "must be a whole {param}");
  bad("GET", "/a/x{id}", "must be a whole {param}");
  bad("GET", "/a/{}", "must be a whole {param}");
  bad("GET", "/a/{bad-name}", "bad parameter name");
  bad("GET", "/a/{...}", "bad parameter name");
  bad("GET", "/a/{rest...}/b", "must be the last segment");
  bad("GET", "/a/{id}/{id}", "twice");
}

TEST_CASE("router: duplicates, empty handlers and bad request schemas throw") {
  Router router;
  router.get("/a", named("a"));
  CHECK_THROWS_WITH_AS(router.get("/a", named("again")), doctest::Contains("GET /a is defined twice"),
                       std::invalid_argument);
  CHECK_NOTHROW(router.post("/a", named("post")));
  CHECK_THROWS_WITH_AS(router.get("/b", nullptr), doctest::Contains("handler is empty"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(router.post("/c", named("c"), {.summary = "", .request_schema = "{nope", .response_schema = ""}),
                       doctest::Contains("POST /c: request schema"), std::invalid_argument);
  CHECK(router.routes().size() == 2);
}

TEST_CASE("http: percent_decode") {
  CHECK(ordinaut::percent_decode("a%20b%2Fc") == std::optional<std::string>("a b/c"));
  CHECK(ordinaut::percent_decode("100%") == std::nullopt);
  CHECK(ordinaut::percent_decode("%g0") == std::nullopt);
  CHECK(ordinaut::percent_decode("a+b") == std::optional<std::string>("a+b"));
  CHECK(ordinaut::percent_decode("") == std::optional<std::string>(""));
}

TEST_CASE("http: query parameters are decoded, '+' is a space, first wins") {
  Request r;
  r.query_string = "q=hello+world&lang=ro&q=second&empty=&flag&enc=%C8%99i%26";
  CHECK(r.query("q") == std::optional<std::string>("hello world"));
  CHECK(r.query("lang") == std::optional<std::string>("ro"));
  CHECK(r.query("empty") == std::optional<std::string>(""));
  CHECK(r.query("flag") == std::optional<std::string>(""));
  CHECK(r.query("enc") == std::optional<std::string>("și&"));
  CHECK(r.query("absent") == std::nullopt);
}

TEST_CASE("http: headers are case-insensitive and keep duplicates") {
  ordinaut::Headers h;
  h.add("Set-Cookie", "a=1");
  h.add("set-cookie", "b=2");
  CHECK(h.get("SET-COOKIE") == "a=1");
  CHECK(h.list().size() == 2);
  h.set("Set-Cookie", "c=3");
  CHECK(h.list().size() == 1);
  CHECK(h.get("set-cookie") == "c=3");
  CHECK(h.has("SET-cookie"));
  h.erase("set-COOKIE");
  CHECK_FALSE(h.has("Set-Cookie"));
  CHECK(h.get("Set-Cookie").empty());
}

TEST_CASE("http: responses and the error shape") {
  auto e = Response::error(404, "not_found", "no \"thing\" here", R"({"id":"x"})");
  auto doc = test_support::expect_error(e, 404, "not_found");
  CHECK(test_support::str(doc["message"]) == "no \"thing\" here");
  CHECK(test_support::str(doc["details"]["id"]) == "x");

  auto t = Response::text(201, "made");
  CHECK(t.status == 201);
  CHECK(t.headers.get("content-type") == "text/plain; charset=utf-8");

  ordinaut::Json v = test_support::parse_json(R"({"a":[1,2]})");
  auto j = Response::json(200, v);
  CHECK(j.body == R"({"a":[1,2]})");
  CHECK(j.headers.get("Content-Type") == "application/json");

  auto s = Response::event_stream([](ordinaut::StreamSink& sink) { sink.write("x"); });
  CHECK(s.headers.get("Content-Type") == "text/event-stream");
  CHECK(s.headers.get("Cache-Control") == "no-cache");
  CHECK(static_cast<bool>(s.stream));
  CHECK(std::string(ordinaut::status_reason(405)) == "Method Not Allowed");
}

TEST_CASE("http: format_sse_event splits data lines") {
  CHECK(ordinaut::format_sse_event("one") == "data: one\n\n");
  CHECK(ordinaut::format_sse_event("a\nb", "update", "7") == "id: 7\nevent: update\ndata: a\ndata: b\n\n");
}

TEST_CASE("http: request.json reports the position of bad JSON") {
  Request r;
  r.body = "{\"a\": }";
  auto j = r.json();
  REQUIRE_FALSE(j.ok());
  CHECK(j.error().code == "invalid_json");
  CHECK(j.error().message.find("line 1, column 7") != std::string::npos);
}
