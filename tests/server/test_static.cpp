// STATIC over real HTTP: the extension's static/ is served under its mount
// with content types, validators and 304s; nothing outside static/ is ever
// served, however the path is spelt; without the grant nothing is served.
#include <unistd.h>

#include "../support/support.hpp"
#include "common.hpp"

using namespace server_test;
namespace fs = std::filesystem;

namespace {

constexpr const char* kSecret = "TOP-SECRET-7f3a9c";
constexpr const char* kSecret2 = "OTHER-SECRET-55e1";

// root/secret.txt, root/outside/secret2.txt and root/ext/{statictest,staticdenied}.
struct StaticFixture {
  test_support::TempDir tmp;
  fs::path ext;
  std::unique_ptr<ServerProcess> server;

  StaticFixture() {
    const fs::path root = tmp.path();
    test_support::write_file(root / "secret.txt", kSecret);
    test_support::write_file(root / "outside" / "secret2.txt", kSecret2);
    ext = root / "ext";
    const fs::path modules = env_or_throw("ORDINAUT_STATICTEST_MODULE_DIR");
    for (const char* id : {"statictest", "staticdenied"}) {
      const fs::path dir = ext / id;
      const bool granted = std::string(id) == "statictest";
      test_support::write_file(dir / "extension.json",
                               std::string(R"({"id":")") + id + R"(","name":"Static test","version":"1.0.0",)" +
                                   R"("module":")" + id + R"(.so","grants":["ROUTES")" +
                                   (granted ? R"(,"STATIC"])" : "]") + "}");
      test_support::place_module(modules / (std::string(id) + ".so"), dir / (std::string(id) + ".so"));
      test_support::write_file(dir / "static" / "index.html", std::string("<h1>index of ") + id + "</h1>");
    }
    const fs::path s = ext / "statictest" / "static";
    test_support::write_file(s / "app.js", "console.log('app');");
    test_support::write_file(s / "style.css", "body { color: black; }");
    test_support::write_file(s / "data.json", R"({"ok":true})");
    test_support::write_file(s / "logo.svg", "<svg xmlns='http://www.w3.org/2000/svg'/>");
    test_support::write_file(s / "pixel.png", std::string("\x89PNG\r\n\x1a\n", 8));
    test_support::write_file(s / "notes", "no extension");
    test_support::write_file(s / "sub" / "index.html", "<p>sub index</p>");
    test_support::write_file(s / "sub" / "page.txt", "sub page");
    fs::create_symlink(root / "secret.txt", s / "escape.txt");          // points out: refused
    fs::create_symlink("../../../secret.txt", s / "escape-relative.txt");
    fs::create_symlink(root / "outside", s / "escdir");                 // folder pointing out: refused
    fs::create_symlink("index.html", s / "inner.html");                 // stays inside: served
    server = std::make_unique<ServerProcess>(server_binary(),
                                             std::vector<std::string>{"--port", "0", "--ext-path", ext.string()});
  }
};

void check_no_secret(int port, const std::string& target) {
  CAPTURE(target);
  for (const char* method : {"GET", "HEAD"}) {
    CAPTURE(method);
    RawResponse r = raw_request(port, method, target);
    CHECK(r.status != 200);
    CHECK(r.status != 0);  // the server answered
    CHECK(r.body.find(kSecret) == std::string::npos);
    CHECK(r.body.find(kSecret2) == std::string::npos);
  }
}

}  // namespace

TEST_CASE("static files: index.html, content types, validators and 304") {
  StaticFixture f;
  const int port = f.server->port();
  auto c = client(port);

  for (const char* target : {"/ext/statictest/", "/ext/statictest", "/ext/statictest/index.html"}) {
    CAPTURE(target);
    auto res = c->Get(target);
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->body == "<h1>index of statictest</h1>");
    CHECK(res->get_header_value("Content-Type") == "text/html; charset=utf-8");
  }
  auto sub = c->Get("/ext/statictest/sub/");
  REQUIRE(sub);
  CHECK(sub->body == "<p>sub index</p>");
  auto inner = c->Get("/ext/statictest/inner.html");
  REQUIRE(inner);
  CHECK(inner->status == 200);
  CHECK(inner->body == "<h1>index of statictest</h1>");

  const std::pair<const char*, const char*> types[] = {
      {"/ext/statictest/app.js", "text/javascript; charset=utf-8"},
      {"/ext/statictest/style.css", "text/css; charset=utf-8"},
      {"/ext/statictest/data.json", "application/json"},
      {"/ext/statictest/logo.svg", "image/svg+xml"},
      {"/ext/statictest/pixel.png", "image/png"},
      {"/ext/statictest/notes", "application/octet-stream"},
      {"/ext/statictest/sub/page.txt", "text/plain; charset=utf-8"},
  };
  for (const auto& [target, type] : types) {
    CAPTURE(target);
    auto res = c->Get(target);
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->get_header_value("Content-Type") == type);
    CHECK(res->get_header_value("X-Content-Type-Options") == "nosniff");
  }
  CHECK(c->Get("/ext/statictest/pixel.png")->body.size() == 8);

  auto first = c->Get("/ext/statictest/app.js");
  REQUIRE(first);
  const std::string etag = first->get_header_value("ETag");
  const std::string last_modified = first->get_header_value("Last-Modified");
  CHECK(etag.size() > 2);
  CHECK(etag.front() == '"');
  CHECK(last_modified.find("GMT") != std::string::npos);

  auto cached = c->Get("/ext/statictest/app.js", {{"If-None-Match", etag}});
  REQUIRE(cached);
  CHECK(cached->status == 304);
  CHECK(cached->body.empty());
  CHECK(cached->get_header_value("ETag") == etag);

  auto changed = c->Get("/ext/statictest/app.js", {{"If-None-Match", "\"something-else\""}});
  REQUIRE(changed);
  CHECK(changed->status == 200);

  auto since = c->Get("/ext/statictest/app.js", {{"If-Modified-Since", last_modified}});
  REQUIRE(since);
  CHECK(since->status == 304);
  auto older = c->Get("/ext/statictest/app.js", {{"If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT"}});
  REQUIRE(older);
  CHECK(older->status == 200);
  CHECK(older->body == "console.log('app');");

  // Routes of the same extension still answer, and a missing file is a 404.
  auto ping = c->Get("/ext/statictest/api/ping");
  REQUIRE(ping);
  CHECK(ping->body == R"({"pong":true})");
  auto missing = c->Get("/ext/statictest/nope.js");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  check_error_shape(missing->body, "not_found");
}

TEST_CASE("no request escapes static/") {
  StaticFixture f;
  const int port = f.server->port();
  const std::string secret_abs = (f.tmp.path() / "secret.txt").string();
  // Sanity: the secret is readable by the server process, so a 404 below means refused.
  REQUIRE(raw_request(port, "GET", "/ext/statictest/app.js").status == 200);
  const std::vector<std::string> targets = {
      "/ext/statictest/../secret.txt",
      "/ext/statictest/../../secret.txt",
      "/ext/statictest/../../../secret.txt",
      "/ext/statictest/sub/../../../../secret.txt",
      "/ext/statictest/static/../../../secret.txt",
      "/ext/../../secret.txt",
      "/ext/statictest/%2e%2e/%2e%2e/%2e%2e/secret.txt",
      "/ext/statictest/%2E%2E/%2E%2E/%2E%2E/secret.txt",
      "/ext/statictest/.%2e/.%2e/.%2e/secret.txt",
      "/ext/statictest/..%2f..%2f..%2fsecret.txt",
      "/ext/statictest/..%2F..%2F..%2Fsecret.txt",
      "/ext/statictest/%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret.txt",
      "/ext/statictest/%2f..%2f..%2f..%2fsecret.txt",
      "/ext/statictest/..%5c..%5c..%5csecret.txt",
      "/ext/statictest/%5c..%5c..%5c..%5csecret.txt",
      "/ext/statictest/..\\..\\..\\secret.txt",
      "/ext/statictest/%252e%252e/%252e%252e/%252e%252e/secret.txt",
      "/ext/statictest/%252e%252e%252f%252e%252e%252f%252e%252e%252fsecret.txt",
      "/ext/statictest/..%252f..%252f..%252fsecret.txt",
      "/ext/statictest/%c0%ae%c0%ae/%c0%ae%c0%ae/%c0%ae%c0%ae/secret.txt",
      "/ext/statictest/....//....//....//secret.txt",
      "/ext/statictest/" + secret_abs,
      "/ext/statictest/%2f" + secret_abs.substr(1),
      "/ext/statictest/%2F" + secret_abs.substr(1),
      "/ext/statictest//" + secret_abs,
      "/ext/statictest/escape.txt",
      "/ext/statictest/escape-relative.txt",
      "/ext/statictest/escdir/secret2.txt",
      "/ext/statictest/escdir/",
      "/ext/statictest/index.html%00.txt",
      "/ext/statictest/../staticdenied/static/index.html",
      "http://127.0.0.1/ext/statictest/../../secret.txt",
      secret_abs,
  };
  for (const auto& target : targets) check_no_secret(port, target);
  // And the files themselves are still served normally afterwards.
  CHECK(raw_request(port, "GET", "/ext/statictest/app.js").body == "console.log('app');");
}

TEST_CASE("without the STATIC grant nothing in static/ is served") {
  StaticFixture f;
  auto c = client(f.server->port());
  for (const char* target : {"/ext/staticdenied/", "/ext/staticdenied/index.html", "/ext/staticdenied"}) {
    CAPTURE(target);
    auto res = c->Get(target);
    REQUIRE(res);
    CHECK(res->status == 404);
    CHECK(res->body.find("index of") == std::string::npos);
  }
  auto ping = c->Get("/ext/staticdenied/api/ping");
  REQUIRE(ping);
  CHECK(ping->status == 200);
  auto status = parse_json(c->Get("/ext/status")->body);
  const auto& caps = status["extensions"]["staticdenied"]["capabilities"];
  REQUIRE(caps["denied"].IsArray());
  REQUIRE(caps["denied"].Size() == 1);
  CHECK(caps["denied"][0] == "STATIC");
}
