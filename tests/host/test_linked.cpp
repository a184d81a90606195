// Extensions linked into the program with ORDINAUT_REGISTER_EXTENSION, approved
// through ORDINAUT_EXT_ENTRY_GRANTS. A separate executable, because the
// registration is global to the process.
#include <doctest/doctest.h>

#include <atomic>

#include <ordinaut/host.hpp>

#include "support.hpp"

using ordinaut::Capability;
using namespace test_support;
using ordinaut::Json;

namespace {

std::atomic<int> g_built{0};

class Linked final : public ordinaut::Extension {
 public:
  Linked() { ++g_built; }
  ordinaut::ExtensionInfo info() const override { return {"linked_demo", "Linked demo", "1.2.0", "linked in"}; }
  ordinaut::CapabilitySet requested_capabilities() const override {
    return {Capability::ROUTES, Capability::TOOLS, Capability::EVENTS_PUB};
  }
  std::optional<ordinaut::Router> setup(ordinaut::SetupContext& context) override {
    if (context.granted(Capability::TOOLS)) {
      context.tool_registrar().add({.name = "ext.linked_demo.echo",
                                    .title = {},
                                    .description = "returns its input",
                                    .input_schema = R"({"type":"object"})",
                                    .output_schema = {},
                                    .function = [](const ordinaut::JsonValue& in, ordinaut::ToolContext&) {
                                      return ordinaut::json::copy(in);
                                    }});
    }
    ordinaut::Router router;
    router.get("/hi", [](ordinaut::Request&) { return ordinaut::Response::json_text(200, R"({"hi":"linked"})"); });
    return router;
  }
};

// Registered under an id that differs from info().id: refused at load.
class WrongId final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override { return {"something_else", "Wrong", "1.0.0", ""}; }
  ordinaut::CapabilitySet requested_capabilities() const override { return {Capability::ROUTES}; }
  std::optional<ordinaut::Router> setup(ordinaut::SetupContext&) override { return std::nullopt; }
};

}  // namespace

ORDINAUT_REGISTER_EXTENSION("linked_demo", Linked);
ORDINAUT_REGISTER_EXTENSION("wrong_id", WrongId);
ORDINAUT_REGISTER_EXTENSION("Bad Id", WrongId);

namespace {

struct Env {
  ScopedEnv paths{"ORDINAUT_EXT_PATHS", std::nullopt};
  ScopedEnv scopes{"ORDINAUT_REQUIRE_SCOPES", std::nullopt};
  ScopedEnv grants;
  ScopedEnv eager;
  Env(std::optional<std::string> g, std::optional<std::string> e)
      : grants("ORDINAUT_EXT_ENTRY_GRANTS", std::move(g)), eager("ORDINAUT_EXT_ENTRY_EAGER", std::move(e)) {}
};

ordinaut::HostOptions options(LogCapture& logs) {
  ordinaut::HostOptions o;
  o.log_sink = logs.sink();
  return o;  // reads the environment and the registrations, as a real host does
}

bool strings_equal(const ordinaut::JsonValue& array, std::vector<std::string> expected) {
  std::vector<std::string> got;
  for (auto& v : array.GetArray()) got.emplace_back(v.GetString());
  return got == expected;
}

ordinaut::Response get(ordinaut::ExtensionHost& host, const std::string& path) {
  auto r = make_request("GET", path);
  return host.handle(r);
}

}  // namespace

TEST_CASE("linked: grants come from ORDINAUT_EXT_ENTRY_GRANTS; it loads lazily") {
  Env env(std::string(R"({"linked_demo":["ROUTES","TOOLS"]})"), std::nullopt);
  LogCapture logs;
  ordinaut::ExtensionHost host(options(logs));
  REQUIRE(host.start().ok());
  const int before = g_built;
  ordinaut::Json status = host.status();
  CHECK(str(status["extensions"]["linked_demo"]["state"]) == "discovered");
  CHECK(str(status["extensions"]["linked_demo"]["source"]) == "linked");
  CHECK(strings_equal(status["discovery_sources"], {"linked"}));

  auto r = get(host, "/ext/linked_demo/hi");
  CHECK(r.status == 200);
  CHECK(r.body == R"({"hi":"linked"})");
  CHECK(g_built == before + 1);
  auto tool = host.tools().call("ext.linked_demo.echo", parse_json(R"({"x":1})"));
  REQUIRE(tool.ok());
  CHECK((*tool)["x"].GetInt() == 1);

  // EVENTS_PUB was requested but not approved: exactly one audit record.
  std::size_t denied = 0;
  for (const auto& a : logs.audits()) {
    if (a.extension == "linked_demo") {
      CHECK(a.event == "capability_denied");
      CHECK(a.fields_json.find(R"("capability":"EVENTS_PUB")") != std::string::npos);
      ++denied;
    }
  }
  CHECK(denied == 1);
}

TEST_CASE("linked: without an entry grant a linked-in extension gets nothing") {
  Env env(std::nullopt, std::nullopt);
  LogCapture logs;
  ordinaut::ExtensionHost host(options(logs));
  REQUIRE(host.start().ok());
  Json err = expect_error(get(host, "/ext/linked_demo/hi"), 404, "not_found");
  CHECK(str(err["details"]["missing_capability"]) == "ROUTES");
  CHECK_FALSE(host.tools().get("ext.linked_demo.echo"));
  std::size_t denied = 0;
  for (const auto& a : logs.audits()) denied += a.extension == "linked_demo" ? 1 : 0;
  CHECK(denied == 3);  // ROUTES, TOOLS, EVENTS_PUB
}

TEST_CASE("linked: ORDINAUT_EXT_ENTRY_EAGER loads at start") {
  Env env(std::string(R"({"linked_demo":["ROUTES"]})"), std::string(R"({"linked_demo":true,"unknown":false})"));
  LogCapture logs;
  ordinaut::ExtensionHost host(options(logs));
  REQUIRE(host.start().ok());
  CHECK(str(host.status()["extensions"]["linked_demo"]["state"]) == "active");
}

TEST_CASE("linked: a registration whose id differs from info().id is refused; a bad id is a discovery error") {
  Env env(std::string(R"({"wrong_id":["ROUTES"]})"), std::nullopt);
  LogCapture logs;
  ordinaut::ExtensionHost host(options(logs));
  REQUIRE(host.start().ok());
  expect_error(get(host, "/ext/wrong_id/"), 503, "unavailable");
  ordinaut::Json status = host.status();
  CHECK(str(status["extensions"]["wrong_id"]["last_error"]) ==
        "info().id is 'something_else' but the registration says 'wrong_id'");
  bool found = false;
  for (auto& e : status["discovery_errors"].GetArray()) {
    if (str(e["file"]) == "linked:Bad Id") {
      found = true;
      CHECK(str(e["error"]).find("is invalid") != std::string::npos);
    }
  }
  CHECK(found);
}

TEST_CASE("linked: use_registered_extensions=false ignores registrations") {
  Env env(std::nullopt, std::nullopt);
  LogCapture logs;
  auto o = options(logs);
  o.use_registered_extensions = false;
  ordinaut::ExtensionHost host(std::move(o));
  REQUIRE(host.start().ok());
  CHECK(host.status()["total_extensions"].GetUint64() == 0);
}
