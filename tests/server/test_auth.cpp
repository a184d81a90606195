// Authentication and browser safety of the real ordinaut-server (issue 14):
// --auth with static tokens and JWTs made with the openssl CLI, CSRF and
// DNS-rebinding attempts on admin, events_demo and the scheduler, the 429 headers,
// SIGHUP key reload, RFC 9728 metadata, and the refusal to serve a public
// address without authentication.
#include <signal.h>

#include <fstream>

#include "../auth/keys.hpp"
#include "../support/support.hpp"
#include "common.hpp"

using namespace server_test;
using ordinaut_test::TestKeys;
using test_support::TempDir;

namespace {

using Headers = httplib::Headers;

// An auth file beside the test's keys: ops may do everything, reader only
// call webui's routes; JWTs from the test issuer; a generous rate limit unless
// the test asks for a tight one.
std::filesystem::path write_auth_file(const TestKeys& keys,
                                      const std::string& rate_limits = R"({"per_principal_rps":1000,"burst":1000})") {
  const auto file = keys.dir() / "auth.json";
  std::ofstream(file) << fmt::format(
      R"({{"tokens":[{{"name":"ops","sha256":"{}","scopes":["ext:admin","ext:status","ext:*:routes"]}},)"
      R"({{"name":"reader","sha256":"{}","scopes":["ext:webui:routes"]}}],)"
      R"("jwt":{{"issuer":"https://id.example","audience":"ordinaut","jwks_file":"jwks.json"}},)"
      R"("allowed_origins":["https://console.example"],"rate_limits":{}}})",
      ordinaut::sha256_hex("ops-token"), ordinaut::sha256_hex("reader-token"), rate_limits);
  return file;
}

Headers bearer(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }

}  // namespace

TEST_CASE("auth: every request under /ext needs a token; scopes come from it alone") {
  TempDir dir;
  TestKeys keys(dir.path());
  auto server = start_server({"--auth", write_auth_file(keys).string()});
  auto c = client(server->port());

  auto health = c->Get("/health");  // the server's own, open
  REQUIRE(health);
  CHECK(health->status == 200);

  auto missing = c->Get("/ext/status");
  REQUIRE(missing);
  CHECK(missing->status == 401);
  check_error_shape(missing->body, "unauthorized");
  CHECK(missing->get_header_value("WWW-Authenticate").starts_with("Bearer realm=\"ordinaut\""));
  // RFC 9728: a JWT setup points MCP clients at its metadata.
  CHECK(missing->get_header_value("WWW-Authenticate").find("resource_metadata=\"http://") != std::string::npos);

  auto wrong = c->Get("/ext/status", bearer("guess"));
  REQUIRE(wrong);
  CHECK(wrong->status == 401);
  CHECK(wrong->get_header_value("WWW-Authenticate").find("error=\"invalid_token\"") != std::string::npos);

  auto asserted = c->Get("/ext/_admin/extensions/srvtest/disable", {{"X-Scopes", "ext:admin"}});
  REQUIRE(asserted);
  CHECK(asserted->status == 401);
  auto post_asserted =
      c->Post("/ext/_admin/extensions/srvtest/disable", Headers{{"X-Scopes", "ext:admin"}}, "", "text/plain");
  REQUIRE(post_asserted);
  CHECK(post_asserted->status == 401);
  CHECK(extension_state(server->port(), "srvtest", bearer("ops-token")) != "disabled");

  // Two Authorization headers (a gateway's and a client's) are refused.
  RawConnection raw(server->port());
  raw.send(
      "GET /ext/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer reader-token\r\n"
      "Authorization: Bearer ops-token\r\nConnection: close\r\n\r\n");
  CHECK(raw.receive(5s).find("HTTP/1.1 400") == 0);

  // reader: webui's routes only (not the scheduler's, whose tasks the webui page shows).
  auto tools = c->Get("/ext/webui/api/tools", bearer("reader-token"));
  REQUIRE(tools);
  CHECK(tools->status == 200);
  auto scheduler = c->Get("/ext/scheduler/api/tasks", bearer("reader-token"));
  REQUIRE(scheduler);
  CHECK(scheduler->status == 403);
  check_error_shape(scheduler->body, "insufficient_scope");
  auto status = c->Get("/ext/status", bearer("reader-token"));
  REQUIRE(status);
  CHECK(status->status == 403);
  check_error_shape(status->body, "insufficient_scope");
  CHECK(parse_json(status->body)["details"]["required_scope"] == "ext:status");
  auto admin = c->Post("/ext/_admin/extensions/srvtest/disable", bearer("reader-token"), "", "text/plain");
  REQUIRE(admin);
  CHECK(admin->status == 403);

  // ops: everything, through the wildcard ext:*:routes.
  auto ops_status = c->Get("/ext/status", bearer("ops-token"));
  REQUIRE(ops_status);
  CHECK(ops_status->status == 200);
  CHECK(c->Get("/ext/srvtest/hello", bearer("ops-token"))->status == 200);
  auto disable = c->Post("/ext/_admin/extensions/srvtest/disable", bearer("ops-token"), "", "text/plain");
  REQUIRE(disable);
  CHECK(disable->status == 200);

  // JWTs of each algorithm; a tampered one and alg "none" are refused.
  for (auto [alg, kid] : {std::pair{"RS256", "rsa1"}, std::pair{"ES256", "ec1"}, std::pair{"EdDSA", "ed1"}}) {
    CAPTURE(alg);
    const std::string jwt = keys.token(alg, kid, "ext:status");
    CHECK(c->Get("/ext/status", bearer(jwt))->status == 200);
    std::string tampered = jwt;
    tampered[tampered.find('.') + 3] ^= 1;
    CHECK(c->Get("/ext/status", bearer(tampered))->status == 401);
  }
  const long now = static_cast<long>(std::time(nullptr));
  CHECK(c->Get("/ext/status", bearer(keys.sign("none", R"({"alg":"none"})",
                                               fmt::format(R"({{"iss":"https://id.example","aud":"ordinaut",)"
                                                           R"("exp":{},"scope":"ext:status"}})",
                                                           now + 60))))
            ->status == 401);
  CHECK(c->Get("/ext/status", bearer(keys.token("RS256", "rsa1", "ext:status", -7200)))->status == 401);

  // The log says who failed and why, never the token.
  const std::string log = server->log();
  CHECK(log.find("auth_failed") != std::string::npos);
  CHECK(log.find("ops-token") == std::string::npos);
  CHECK(log.find("reader-token") == std::string::npos);
  CHECK(log.find("guess") == std::string::npos);
}

TEST_CASE("auth: the webui's files load without a token, its API does not") {
  TempDir dir;
  TestKeys keys(dir.path());
  auto server = start_server({"--auth", write_auth_file(keys).string()});
  auto c = client(server->port());
  auto page = c->Get("/ext/webui/");
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK(page->body.find("sign-in") != std::string::npos);
  CHECK(c->Get("/ext/webui/app.js")->status == 200);
  CHECK(c->Get("/ext/webui/api/tools")->status == 401);
  CHECK(c->Get("/ext/webui/no-such-file.js")->status == 401);  // nothing is told without a token
}

TEST_CASE("auth: cross-site and DNS-rebinding requests change nothing, with or without --auth") {
  TempDir dir;
  TestKeys keys(dir.path());
  for (bool with_auth : {false, true}) {
    CAPTURE(with_auth);
    // A fresh scheduler store each time, so that "nothing happened" can be seen.
    const std::string data = (dir.path() / (with_auth ? "data-auth" : "data-open")).string();
    auto server = with_auth ? start_server({"--auth", write_auth_file(keys).string(), "--data-dir", data})
                            : start_server({"--data-dir", data});
    auto c = client(server->port());
    const Headers token = with_auth ? bearer("ops-token") : Headers{};
    auto with = [&](Headers h) {
      for (const auto& kv : token) h.insert(kv);
      return h;
    };
    // A "simple" cross-site POST: text/plain, Origin of another site.
    const Headers evil_origin = with({{"Origin", "http://evil.example"}});
    auto disable = c->Post("/ext/_admin/extensions/srvtest/disable", evil_origin, "", "text/plain");
    REQUIRE(disable);
    CHECK(disable->status == 403);
    check_error_shape(disable->body, "forbidden");
    auto publish = c->Post("/ext/events_demo/publish/events_demo.x", evil_origin, R"({"a":1})", "text/plain");
    REQUIRE(publish);
    CHECK(publish->status == 403);
    auto task = c->Post("/ext/scheduler/api/tasks", evil_origin, R"({"title":"t","schedule_kind":"manual"})",
                        "text/plain");
    REQUIRE(task);
    CHECK(task->status == 403);
    // DNS rebinding: our address under another name.
    auto rebound =
        c->Post("/ext/_admin/extensions/srvtest/disable", with({{"Host", "evil.example"}}), "", "text/plain");
    REQUIRE(rebound);
    CHECK(rebound->status == 403);
    CHECK(c->Get("/ext/scheduler/api/tasks", with({{"Host", "evil.example"}}))->status == 403);
    // Nothing happened.
    auto tasks = c->Get("/ext/scheduler/api/tasks", token);
    REQUIRE(tasks);
    CHECK(parse_json(tasks->body)["tasks"].Size() == 0);
    CHECK(extension_state(server->port(), "srvtest", token) != "disabled");
    // The server's own origin, and (with the auth file) the allowed one, pass.
    const std::string own = "http://127.0.0.1:" + std::to_string(server->port());
    auto mine = c->Post("/ext/scheduler/api/tasks", with({{"Origin", own}}), R"({"title":"t","schedule_kind":"manual"})",
                        "application/json");
    REQUIRE(mine);
    CHECK(mine->status == 201);
    if (with_auth) {
      auto console = c->Post("/ext/scheduler/api/tasks", with({{"Origin", "https://console.example"}}),
                             R"({"title":"u","schedule_kind":"manual"})", "application/json");
      REQUIRE(console);
      CHECK(console->status == 201);
    }
  }
}

TEST_CASE("auth: a rate limit answers 429 with Retry-After and RateLimit headers") {
  TempDir dir;
  TestKeys keys(dir.path());
  auto server = start_server({"--auth", write_auth_file(keys, R"({"per_principal_rps":0.01,"burst":2})").string()});
  auto c = client(server->port());
  CHECK(c->Get("/ext/srvtest/hello", bearer("ops-token"))->status == 200);
  CHECK(c->Get("/ext/srvtest/hello", bearer("ops-token"))->status == 200);
  auto limited = c->Get("/ext/srvtest/hello", bearer("ops-token"));
  REQUIRE(limited);
  CHECK(limited->status == 429);
  check_error_shape(limited->body, "rate_limit_exceeded");
  CHECK(std::stoi(limited->get_header_value("Retry-After")) >= 1);
  CHECK(limited->get_header_value("RateLimit-Limit") == "2");
  CHECK(limited->get_header_value("RateLimit-Remaining") == "0");
  CHECK(std::stoi(limited->get_header_value("RateLimit-Reset")) >= 1);
}

TEST_CASE("auth: SIGHUP re-reads the JWKS: a removed key stops verifying") {
  TempDir dir;
  TestKeys keys(dir.path());
  auto server = start_server({"--auth", write_auth_file(keys).string()});
  auto c = client(server->port());
  const std::string jwt = keys.token("EdDSA", "ed1", "ext:status");
  REQUIRE(c->Get("/ext/status", bearer(jwt))->status == 200);
  keys.write_jwks(true, true, false);
  server->kill(SIGHUP);
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  int status = 200;
  while (status == 200 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    status = c->Get("/ext/status", bearer(jwt))->status;
  }
  CHECK(status == 401);
  CHECK(c->Get("/ext/status", bearer(keys.token("RS256", "rsa1", "ext:status")))->status == 200);
  CHECK(c->Get("/health")->status == 200);  // SIGHUP did not stop the server
}

TEST_CASE("auth: /.well-known/oauth-protected-resource describes the resource (RFC 9728)") {
  TempDir dir;
  TestKeys keys(dir.path());
  auto server = start_server({"--auth", write_auth_file(keys).string()});
  auto c = client(server->port());
  auto meta = c->Get("/.well-known/oauth-protected-resource");
  REQUIRE(meta);
  CHECK(meta->status == 200);
  auto doc = parse_json(meta->body);
  CHECK(doc["resource"] == "ordinaut");
  CHECK(doc["authorization_servers"][0] == "https://id.example");
  auto plain = start_server();
  auto none = client(plain->port())->Get("/.well-known/oauth-protected-resource");
  REQUIRE(none);
  CHECK(none->status == 404);
}

TEST_CASE("auth: a public address without --auth is refused at start") {
  TempDir dir;
  const ExitStatus st =
      run_to_end(server_binary(), {"--host", "0.0.0.0", "--port", "0"}, dir.path() / "out", dir.path() / "err");
  CHECK(st.exited);
  CHECK(st.code == 2);
  const std::string err = read_text(dir.path() / "err");
  CHECK(err.find("--host 0.0.0.0") != std::string::npos);
  CHECK(err.find("--insecure-no-auth") != std::string::npos);
}
