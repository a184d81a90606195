// The seed's unit-test example, in C++, plus tools through TestClient: an
// extension is set up with chosen grants and a stand-in registry, then driven
// with requests, without sockets.
#include <doctest/doctest.h>

#include <ordinaut/testing.hpp>

#include "support.hpp"

using ordinaut::Capability;
using ordinaut::testing::TestClient;
using namespace test_support;
using ordinaut::Json;

namespace {

// ExtensiaMea from the seed: GET /salut, and a tool when TOOLS is granted.
class ExtensiaMea final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override {
    return {"extensia_mea", "Extensia Mea Personalizată", "1.0.0", "Funcționalitate personalizată pentru Ordinaut"};
  }
  ordinaut::CapabilitySet requested_capabilities() const override { return {Capability::ROUTES, Capability::TOOLS}; }
  std::optional<ordinaut::Router> setup(ordinaut::SetupContext& context) override {
    ordinaut::Router router;
    router.get("/salut", [](ordinaut::Request&) {
      return ordinaut::Response::json_text(200, R"({"mesaj":"Salut de la extensia mea!"})");
    });
    if (context.granted(Capability::TOOLS)) {
      context.tool_registrar().add({
          .name = "ext.extensia_mea.instrumentul_meu",
          .title = "Instrumentul meu",
          .description = "Repetă un text de n ori",
          .input_schema = R"({"type":"object","required":["text","n"],
                             "properties":{"text":{"type":"string"},"n":{"type":"integer","minimum":1,"maximum":5}}})",
          .output_schema = R"({"type":"object","required":["rezultat"],"properties":{"rezultat":{"type":"string"}}})",
          .function = [](const ordinaut::JsonValue& in, ordinaut::ToolContext&) {
            std::string out;
            for (int i = 0; i < in["n"].GetInt(); ++i) out += in["text"].GetString();
            ordinaut::Json doc = ordinaut::json::object();
            doc.AddMember("rezultat", ordinaut::JsonValue(out.c_str(), doc.GetAllocator()), doc.GetAllocator());
            return doc;
          },
      });
    }
    return router;
  }
};

// Designated initializers that skip members warn under -Wextra (GCC 12).
ordinaut::testing::TestClientOptions with(ordinaut::CapabilitySet grants,
                                          std::shared_ptr<ordinaut::ToolRegistry> registry = nullptr,
                                          bool require_scopes = false) {
  ordinaut::testing::TestClientOptions o;
  o.grants = grants;
  o.tool_registry = std::move(registry);
  o.require_scopes = require_scopes;
  return o;
}

}  // namespace

// The seed's test_extension_endpoint: grants {ROUTES} and a stand-in registry.
TEST_CASE("testing: the seed's unit test — GET /salut through TestClient") {
  auto stand_in = std::make_shared<ordinaut::ToolRegistry>();
  TestClient client(std::make_unique<ExtensiaMea>(), with({Capability::ROUTES}, stand_in));
  CHECK(client.state() == ordinaut::ExtensionState::active);
  CHECK(client.extension_id() == "extensia_mea");

  auto response = client.get("/salut");
  CHECK(response.status == 200);
  Json body = parse_json(response.body);
  CHECK(body == parse_json(R"({"mesaj":"Salut de la extensia mea!"})"));

  // Only ROUTES was granted: the stand-in registry saw no registration, and
  // the denied TOOLS was audited.
  CHECK(stand_in->list().empty());
  auto audits = client.audit_records();
  REQUIRE(audits.size() == 1);
  CHECK(audits[0].fields_json.find(R"("capability":"TOOLS")") != std::string::npos);
}

TEST_CASE("testing: tools through TestClient with TOOLS granted") {
  auto registry = std::make_shared<ordinaut::ToolRegistry>();
  TestClient client(std::make_unique<ExtensiaMea>(),
                    with({Capability::ROUTES, Capability::TOOLS}, registry));
  REQUIRE(registry->get("ext.extensia_mea.instrumentul_meu"));
  CHECK(registry->get("ext.extensia_mea.instrumentul_meu")->owner == "extensia_mea");

  auto ok = client.tools().call("ext.extensia_mea.instrumentul_meu", parse_json(R"({"text":"ha","n":3})"));
  REQUIRE(ok.ok());
  CHECK(str((*ok)["rezultat"]) == "hahaha");

  auto bad = client.tools().call("ext.extensia_mea.instrumentul_meu", parse_json(R"({"text":"ha","n":9})"));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == "invalid_input");
  CHECK(bad.error().pointer == "/n");
  CHECK(client.audit_records().empty());
}

TEST_CASE("testing: without grants nothing is mounted") {
  TestClient client(std::make_unique<ExtensiaMea>());
  Json err = expect_error(client.get("/salut"), 404, "not_found");
  CHECK(str(err["details"]["missing_capability"]) == "ROUTES");
  CHECK(client.audit_records().size() == 2);
}

TEST_CASE("testing: host requests, 404s and a failing setup") {
  TestClient client(std::make_unique<ExtensiaMea>(), with({Capability::ROUTES}));
  auto status = client.host_request("GET", "/ext/status");
  CHECK(status.status == 200);
  CHECK(str(parse_json(status.body)["extensions"]["extensia_mea"]["state"]) == "active");
  expect_error(client.get("/absent"), 404, "not_found");
  auto q = client.get("/salut?x=1");
  CHECK(q.status == 200);

  struct Broken final : ordinaut::Extension {
    ordinaut::ExtensionInfo info() const override { return {"broken", "Broken", "1.0.0", ""}; }
    ordinaut::CapabilitySet requested_capabilities() const override { return {Capability::ROUTES}; }
    std::optional<ordinaut::Router> setup(ordinaut::SetupContext&) override {
      throw std::runtime_error("no config");
    }
  };
  TestClient broken(std::make_unique<Broken>(), with({Capability::ROUTES}));
  CHECK(broken.state() == ordinaut::ExtensionState::error);
  CHECK(broken.setup_error() == "setup() threw: no config");
  expect_error(broken.get("/"), 503, "unavailable");
}

TEST_CASE("testing: scopes can be required in a TestClient") {
  TestClient client(std::make_unique<ExtensiaMea>(), with({Capability::ROUTES}, nullptr, true));
  expect_error(client.get("/salut"), 403, "forbidden");
  auto r = client.request("GET", "/salut", {}, {{"X-Scopes", "ext:extensia_mea:routes"}});
  CHECK(r.status == 200);
}
