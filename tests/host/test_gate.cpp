// The Gate (lib/host/gate.cpp): browser safety, authentication and rate
// limits in front of every request under /ext, in process. The same rules
// over real HTTP are in tests/server.
#include <doctest/doctest.h>

#include <ctime>
#include <mutex>

#include "../auth/keys.hpp"
#include "host_support.hpp"
#include "ordinaut/auth.hpp"

using namespace test_support;
using ordinaut::Capability;
using ordinaut::CapabilitySet;
using ordinaut::ExtensionHost;
using ordinaut::Json;

namespace {

// Echoes the scopes the host resolved; POST /items stands for a
// state-changing route.
struct Echo final : ordinaut::Extension {
  ordinaut::ExtensionInfo info() const override { return {"echo", "Echo", "1.0.0", "echo"}; }
  CapabilitySet requested_capabilities() const override { return CapabilitySet{Capability::ROUTES}; }
  std::optional<ordinaut::Router> setup(ordinaut::SetupContext&) override {
    ordinaut::Router r;
    auto echo = [](ordinaut::Request& req) {
      std::string scopes;
      for (const auto& s : req.scopes) scopes += s + " ";
      return ordinaut::Response::text(200, scopes + "|" + std::string(req.header("X-Scopes")));
    };
    r.get("/", echo);
    r.post("/items", echo);
    return r;
  }
};

// Watches audit.* on the bus, as an operator's extension would.
struct Watcher final : ordinaut::Extension {
  struct Seen {
    std::mutex mutex;
    std::vector<ordinaut::Event> events;
  };
  std::shared_ptr<Seen> seen;
  explicit Watcher(std::shared_ptr<Seen> s) : seen(std::move(s)) {}
  ordinaut::ExtensionInfo info() const override { return {"watcher", "Watcher", "1.0.0", "audit watcher"}; }
  CapabilitySet requested_capabilities() const override { return CapabilitySet{Capability::EVENTS_SUB}; }
  std::optional<ordinaut::Router> setup(ordinaut::SetupContext& c) override {
    auto r = c.events_subscriber().subscribe("audit.*", [seen = seen](const ordinaut::Event& e) {
      std::lock_guard lock(seen->mutex);
      seen->events.push_back(e);
    });
    if (!r) throw std::runtime_error(r.error().message);
    return std::nullopt;
  }
};

struct GateFixture {
  CleanEnvironment env;
  LogCapture logs;
  std::shared_ptr<Watcher::Seen> seen = std::make_shared<Watcher::Seen>();
  std::unique_ptr<ExtensionHost> host;

  explicit GateFixture(const std::function<void(ordinaut::HostOptions&)>& prepare) {
    ordinaut::HostOptions o = host_options(logs);
    prepare(o);
    host = std::make_unique<ExtensionHost>(std::move(o));
    host->add_linked(
        "echo", [] { return std::make_unique<Echo>(); }, CapabilitySet{Capability::ROUTES}, true);
    host->add_linked(
        "watcher", [s = seen] { return std::make_unique<Watcher>(s); }, CapabilitySet{Capability::EVENTS_SUB}, true);
    REQUIRE(host->start());
  }

  std::vector<ordinaut::Event> audit_events(const std::string& topic, std::size_t at_least) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (true) {
      std::vector<ordinaut::Event> out;
      {
        std::lock_guard lock(seen->mutex);
        for (const auto& e : seen->events) {
          if (e.topic == topic) out.push_back(e);
        }
      }
      if (out.size() >= at_least || std::chrono::steady_clock::now() > deadline) return out;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
};

std::shared_ptr<ordinaut::BearerAuthenticator> authenticator(const ordinaut_test::TestKeys& keys,
                                                             const std::string& extra = "") {
  auto config = ordinaut::parse_auth_config(
      fmt::format(R"({{"tokens":[{{"name":"ops","sha256":"{}","scopes":["ext:admin","ext:*:routes","ext:status"]}},)"
                  R"({{"name":"narrow","sha256":"{}","scopes":["ext:echo:routes"]}}],)"
                  R"("jwt":{{"issuer":"https://id.example","audience":"ordinaut","jwks_file":"{}"}}{}}})",
                  ordinaut::sha256_hex("ops-token"), ordinaut::sha256_hex("narrow-token"), keys.jwks_file().string(),
                  extra),
      keys.dir() / "auth.json");
  REQUIRE_MESSAGE(config, (config ? "" : config.error().message));
  auto auth = ordinaut::BearerAuthenticator::create(std::move(config).value());
  REQUIRE(auth);
  return *auth;
}

using Headers = std::vector<std::pair<std::string, std::string>>;

}  // namespace

TEST_CASE("gate: Host and Origin are checked on every request under /ext, without auth too") {
  GateFixture f([](ordinaut::HostOptions& o) {
    o.origin_policy.allowed_hosts = {"ordinaut.example"};
    o.origin_policy.allowed_origins = {"https://console.example"};
  });
  ExtensionHost& host = *f.host;
  // DNS rebinding: a name that resolves to us but is not ours.
  auto rebound = send(host, "GET", "/ext/echo/", "", {{"Host", "evil.example:8080"}});
  Json body = expect_error(rebound, 403, "forbidden");
  CHECK(str(body["message"]).find("Host \"evil.example:8080\" is not accepted") != std::string::npos);
  CHECK(send(host, "GET", "/ext/status", "", {{"Host", "evil.example"}}).status == 403);
  CHECK(send(host, "POST", "/ext/_admin/extensions/echo/disable", "", {{"Host", "evil.example"}}).status == 403);
  for (const char* ok : {"localhost:8080", "127.0.0.1", "[::1]:9", "ORDINAUT.example:443"}) {
    CHECK(send(host, "GET", "/ext/echo/", "", {{"Host", ok}}).status == 200);
  }
  CHECK(send(host, "GET", "/ext/echo/").status == 200);  // in process: no Host at all

  // Cross-site requests: a "simple" POST from another origin changes nothing.
  auto csrf = send(host, "POST", "/ext/_admin/extensions/echo/disable", "x",
                   {{"Host", "127.0.0.1:8080"}, {"Origin", "http://evil.example"}, {"Content-Type", "text/plain"}});
  expect_error(csrf, 403, "forbidden");
  CHECK(state_of(host, "echo") == "active");
  CHECK(send(host, "POST", "/ext/echo/items", "", {{"Host", "127.0.0.1:8080"}, {"Origin", "null"}}).status == 403);
  // ... nor reads what another origin may not see.
  CHECK(send(host, "GET", "/ext/echo/", "", {{"Host", "127.0.0.1:8080"}, {"Origin", "http://evil.example"}}).status ==
        403);
  // The server's own origin and the allowed one pass.
  CHECK(send(host, "POST", "/ext/echo/items", "", {{"Host", "127.0.0.1:8080"}, {"Origin", "http://127.0.0.1:8080"}})
            .status == 200);
  CHECK(
      send(host, "POST", "/ext/echo/items", "", {{"Host", "ordinaut.example"}, {"Origin", "https://ordinaut.example"}})
          .status == 200);
  CHECK(send(host, "POST", "/ext/echo/items", "", {{"Host", "127.0.0.1:8080"}, {"Origin", "https://console.example"}})
            .status == 200);
  // Another loopback port is another origin.
  CHECK(send(host, "POST", "/ext/echo/items", "", {{"Host", "127.0.0.1:8080"}, {"Origin", "http://127.0.0.1:6274"}})
            .status == 403);
  CHECK(f.logs.count("origin_refused") >= 5);
  auto events = f.audit_events("audit.origin_refused", 1);
  REQUIRE_FALSE(events.empty());
  CHECK(events[0].source == "host");
}

TEST_CASE("gate: ORDINAUT_ALLOWED_HOSTS and ORDINAUT_ALLOWED_ORIGINS add to the policy") {
  CleanEnvironment env;
  ScopedEnv hosts("ORDINAUT_ALLOWED_HOSTS", "a.example, b.example");
  ScopedEnv origins("ORDINAUT_ALLOWED_ORIGINS", "https://c.example");
  LogCapture logs;
  ordinaut::HostOptions o = host_options(logs);
  o.read_environment = true;
  ExtensionHost host(std::move(o));
  host.add_linked(
      "echo", [] { return std::make_unique<Echo>(); }, CapabilitySet{Capability::ROUTES}, true);
  REQUIRE(host.start());
  CHECK(send(host, "GET", "/ext/echo/", "", {{"Host", "b.example"}}).status == 200);
  CHECK(send(host, "GET", "/ext/echo/", "", {{"Host", "d.example"}}).status == 403);
  CHECK(send(host, "POST", "/ext/echo/items", "", {{"Host", "a.example"}, {"Origin", "https://c.example"}}).status ==
        200);
}

TEST_CASE("gate: with an authenticator, scopes come only from the verified token") {
  TempDir dir;
  ordinaut_test::TestKeys keys(dir.path() / "keys");
  auto auth = authenticator(keys);
  GateFixture f([&](ordinaut::HostOptions& o) { o.authenticator = auth; });
  ExtensionHost& host = *f.host;
  CHECK(host.require_scopes());

  // No token: 401 with the challenge, for routes, status and admin alike.
  for (auto [method, path] : {std::pair{"GET", "/ext/echo/"}, std::pair{"GET", "/ext/status"},
                              std::pair{"POST", "/ext/_admin/extensions/echo/disable"}}) {
    auto r = send(host, method, path);
    expect_error(r, 401, "unauthorized");
    CHECK(r.headers.get("WWW-Authenticate").starts_with("Bearer realm=\"ordinaut\""));
  }
  // Asserting scopes gets nothing.
  auto asserted = send(host, "GET", "/ext/echo/", "", {{"X-Scopes", "ext:admin,ext:echo:routes"}});
  CHECK(asserted.status == 401);
  // A wrong token.
  auto wrong = send(host, "GET", "/ext/echo/", "", {{"Authorization", "Bearer guess"}});
  expect_error(wrong, 401, "unauthorized");
  CHECK(wrong.headers.get("WWW-Authenticate") == "Bearer realm=\"ordinaut\", error=\"invalid_token\"");
  // Two Authorization headers: a gateway's and a client's never mix.
  auto twice = send(host, "GET", "/ext/echo/", "",
                    {{"Authorization", "Bearer narrow-token"}, {"Authorization", "Bearer ops-token"}});
  expect_error(twice, 400, "bad_request");

  // The narrow token reaches echo, with its own scopes, and X-Scopes removed.
  auto narrow =
      send(host, "GET", "/ext/echo/", "", {{"Authorization", "Bearer narrow-token"}, {"X-Scopes", "ext:admin"}});
  REQUIRE(narrow.status == 200);
  CHECK(narrow.body == "ext:echo:routes |");
  // ... but not admin nor status: 403 insufficient_scope naming the scope.
  auto admin = send(host, "POST", "/ext/_admin/extensions/echo/disable", "",
                    {{"Authorization", "Bearer narrow-token"}, {"X-Scopes", "ext:admin"}});
  Json denied = expect_error(admin, 403, "insufficient_scope");
  CHECK(str(denied["details"]["required_scope"]) == "ext:admin");
  CHECK(admin.headers.get("WWW-Authenticate").find("error=\"insufficient_scope\"") != std::string::npos);
  CHECK(state_of(host, "echo") == "active");
  expect_error(send(host, "GET", "/ext/status", "", {{"Authorization", "Bearer narrow-token"}}), 403,
               "insufficient_scope");
  expect_error(send(host, "GET", "/ext/openapi.json", "", {{"Authorization", "Bearer narrow-token"}}), 403,
               "insufficient_scope");

  // The ops token: wildcard routes, status and admin.
  CHECK(send(host, "GET", "/ext/echo/", "", {{"Authorization", "Bearer ops-token"}}).status == 200);
  CHECK(send(host, "GET", "/ext/status", "", {{"Authorization", "Bearer ops-token"}}).status == 200);
  CHECK(send(host, "POST", "/ext/_admin/extensions/echo/disable", "", {{"Authorization", "Bearer ops-token"}}).status ==
        200);
  CHECK(state_of(host, "echo") == "disabled");

  // A JWT with the scope claim.
  const std::string jwt = keys.token("ES256", "ec1", "ext:echo:routes ext:status");
  CHECK(send(host, "GET", "/ext/status", "", {{"Authorization", "Bearer " + jwt}}).status == 200);
  auto expired = send(host, "GET", "/ext/status", "",
                      {{"Authorization", "Bearer " + keys.token("ES256", "ec1", "ext:status", -7200)}});
  CHECK(expired.status == 401);
  // A JWT setup advertises where to find the authorization server (RFC 9728).
  auto challenge = send(host, "GET", "/ext/status", "", {{"Host", "127.0.0.1:8080"}});
  CHECK(challenge.headers.get("WWW-Authenticate") ==
        "Bearer realm=\"ordinaut\", resource_metadata=\"http://127.0.0.1:8080/.well-known/oauth-protected-resource\"");

  // Audit: every refusal is a log record (never with the token) and an event.
  for (const auto& r : f.logs.audits()) {
    CHECK(r.message.find("ops-token") == std::string::npos);
    CHECK(r.fields_json.find("ops-token") == std::string::npos);
    CHECK(r.fields_json.find("narrow-token") == std::string::npos);
  }
  auto failures = f.audit_events("audit.auth_failed", 5);
  CHECK(failures.size() >= 5);
  CHECK(failures.at(0).source == "host");
  CHECK(str((*failures.at(0).payload)["fields"]["reason"]) == "missing_token");
  CHECK(f.audit_events("audit.admin_action", 1).size() == 1);
}

TEST_CASE("gate: rate limits answer 429 with Retry-After and RateLimit headers") {
  TempDir dir;
  ordinaut_test::TestKeys keys(dir.path() / "keys");
  auto auth = authenticator(keys);
  GateFixture f([&](ordinaut::HostOptions& o) {
    o.authenticator = auth;
    o.rate_limits.per_principal_rps = 0.001;  // refills far slower than the test runs
    o.rate_limits.burst = 3;
  });
  ExtensionHost& host = *f.host;
  const Headers ops{{"Authorization", "Bearer ops-token"}};
  for (int i = 0; i < 3; ++i) CHECK(send(host, "GET", "/ext/echo/", "", ops).status == 200);
  auto limited = send(host, "GET", "/ext/echo/", "", ops);
  Json body = expect_error(limited, 429, "rate_limit_exceeded");
  CHECK(str(body["message"]).find("principal 'ops'") != std::string::npos);
  CHECK(std::stol(std::string(limited.headers.get("Retry-After"))) >= 1);
  CHECK(limited.headers.get("RateLimit-Limit") == "3");
  CHECK(limited.headers.get("RateLimit-Remaining") == "0");
  CHECK(std::stol(std::string(limited.headers.get("RateLimit-Reset"))) >= 1);
  // Another principal has its own bucket.
  CHECK(send(host, "GET", "/ext/echo/", "", {{"Authorization", "Bearer narrow-token"}}).status == 200);
  // Unauthenticated guessing spends the client address's bucket.
  for (int i = 0; i < 3; ++i) CHECK(send(host, "GET", "/ext/echo/", "", {{"Authorization", "Bearer x"}}).status == 401);
  CHECK(send(host, "GET", "/ext/echo/", "", {{"Authorization", "Bearer x"}}).status == 429);
  CHECK(f.audit_events("audit.rate_limited", 2).size() >= 2);
}

TEST_CASE("gate: a per-extension limit applies to that extension only") {
  GateFixture f([](ordinaut::HostOptions& o) { o.rate_limits.per_extension = {{"echo", {0.001, 2}}}; });
  ExtensionHost& host = *f.host;
  CHECK(send(host, "GET", "/ext/echo/").status == 200);
  CHECK(send(host, "GET", "/ext/echo/").status == 200);
  auto limited = send(host, "GET", "/ext/echo/");
  Json body = expect_error(limited, 429, "rate_limit_exceeded");
  CHECK(str(body["details"]["scope"]) == "extension");
  CHECK(send(host, "GET", "/ext/status").status == 200);  // the host's own paths are not echo's
}
