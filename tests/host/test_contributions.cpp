// Manifest contributions (extension.json "contributes"): tools, resources,
// templates and prompts listed before the module is loaded, the first use
// loading it, and the load refused when the module registers something else.
#include <doctest/doctest.h>

#include <dlfcn.h>

#include <ordinaut/host.hpp>

#include "host_support.hpp"

using ordinaut::ExtensionHost;
using ordinaut::Json;
using namespace test_support;

namespace {

// What the contrib test module registers, declared (ids and schemas equal).
const std::string kContributes = R"("contributes":{
  "tools":[{"name":"echo","description":"Echoes its text",
            "inputSchema":{"type":"object","required":["text"],"properties":{"text":{"type":"string"}}}}],
  "resources":[{"uri":"ext://contrib/readme","name":"readme","mimeType":"text/plain"}],
  "resourceTemplates":[{"uriTemplate":"ext://contrib/items/{id}","name":"item","mimeType":"text/plain"}],
  "prompts":[{"name":"greet","description":"Greets someone","arguments":[{"name":"who","required":true}]}]
})";

std::string contrib_manifest(const std::string& contributes = kContributes) {
  return manifest_json("contrib", "contrib_ext.so", R"(["TOOLS","RESOURCES","PROMPTS"])", contributes);
}

int contrib_constructed() {
  void* handle = ::dlopen(test_module("contrib").c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (handle == nullptr) return 0;
  auto fn = reinterpret_cast<int (*)()>(::dlsym(handle, "contrib_ext_constructed"));
  const int n = fn ? fn() : -1;
  ::dlclose(handle);
  return n;
}

struct Fixture {
  CleanEnvironment env;
  TempDir root;
  LogCapture logs;
  std::unique_ptr<ExtensionHost> host;

  ExtensionHost& start() {
    host = std::make_unique<ExtensionHost>(host_options(logs, {root.path()}));
    REQUIRE(host->start().ok());
    return *host;
  }
};

template <typename List>
bool has_name(const List& list, const std::string& name) {
  for (const auto& item : list) {
    if constexpr (requires { item.uri; }) {
      if (item.uri == name) return true;
    } else {
      if (item.name == name) return true;
    }
  }
  return false;
}

std::string discovery_errors(ExtensionHost& host) { return ordinaut::json::dump(host.status()["discovery_errors"]); }

}  // namespace

TEST_CASE("contributions: declared entries are listed while the extension stays discovered") {
  Fixture f;
  make_extension(f.root.path(), "contrib", contrib_manifest(), "contrib");
  const int before = contrib_constructed();
  ExtensionHost& host = f.start();

  CHECK(state_of(host, "contrib") == "discovered");
  auto tools = host.tools().list();
  REQUIRE(has_name(tools, "ext.contrib.echo"));
  for (const auto& t : tools) {
    if (t.name == "ext.contrib.echo") {
      CHECK(t.declared);
      CHECK(t.description == "Echoes its text");
      CHECK(ordinaut::json::dump(*t.input_schema).find("\"required\":[\"text\"]") != std::string::npos);
    }
  }
  CHECK(has_name(host.resources().list(), "ext://contrib/readme"));
  CHECK(has_name(host.resources().list_templates(), "ext://contrib/items/{id}"));
  CHECK(has_name(host.prompts().list(), "ext.contrib.greet"));
  // The host's own resources are there too.
  CHECK(has_name(host.resources().list(), "ordinaut://host/status"));
  CHECK(state_of(host, "contrib") == "discovered");
  CHECK(contrib_constructed() == before);
}

TEST_CASE("contributions: the first call of a declared tool loads the extension and is served") {
  Fixture f;
  make_extension(f.root.path(), "contrib", contrib_manifest(), "contrib");
  const int before = contrib_constructed();
  ExtensionHost& host = f.start();

  auto input = ordinaut::json::parse(R"({"text":"hi"})");
  REQUIRE(input.ok());
  auto out = host.tools().call("ext.contrib.echo", *input);
  REQUIRE_MESSAGE(out.ok(), out.error().message);
  CHECK(ordinaut::json::dump(*out) == R"({"text":"hi"})");
  CHECK(state_of(host, "contrib") == "active");
  CHECK(contrib_constructed() == before + 1);
  for (const auto& t : host.tools().list()) {
    if (t.name == "ext.contrib.echo") CHECK_FALSE(t.declared);
  }
}

TEST_CASE("contributions: reading a declared resource or template, or getting a prompt, loads the extension") {
  SUBCASE("resource") {
    Fixture f;
    make_extension(f.root.path(), "contrib", contrib_manifest(), "contrib");
    ExtensionHost& host = f.start();
    auto read = host.resources().read("ext://contrib/readme");
    REQUIRE_MESSAGE(read.ok(), read.error().message);
    REQUIRE(read->size() == 1);
    CHECK((*read)[0].text == "contrib readme");
    CHECK((*read)[0].mime_type == "text/plain");
    CHECK(state_of(host, "contrib") == "active");
  }
  SUBCASE("template") {
    Fixture f;
    make_extension(f.root.path(), "contrib", contrib_manifest(), "contrib");
    ExtensionHost& host = f.start();
    auto read = host.resources().read("ext://contrib/items/42");
    REQUIRE_MESSAGE(read.ok(), read.error().message);
    CHECK((*read)[0].text == "item 42");
    CHECK(state_of(host, "contrib") == "active");
  }
  SUBCASE("template completion") {
    Fixture f;
    make_extension(f.root.path(), "contrib", contrib_manifest(), "contrib");
    ExtensionHost& host = f.start();
    auto c = host.resources().complete("ext://contrib/items/{id}", "id", "b", {});
    REQUIRE_MESSAGE(c.ok(), c.error().message);
    CHECK(c->values == std::vector<std::string>{"beta", "bravo"});
    CHECK(c->total == 2);
    CHECK(state_of(host, "contrib") == "active");
  }
  SUBCASE("prompt") {
    Fixture f;
    make_extension(f.root.path(), "contrib", contrib_manifest(), "contrib");
    ExtensionHost& host = f.start();
    auto got = host.prompts().get("ext.contrib.greet", {{"who", "Ada"}});
    REQUIRE_MESSAGE(got.ok(), got.error().message);
    REQUIRE(got->messages.size() == 1);
    CHECK(got->messages[0].content.text == "Hello Ada");
    CHECK(state_of(host, "contrib") == "active");
    auto missing = host.prompts().get("ext.contrib.greet", {});
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().code == "invalid_arguments");
    CHECK(missing.error().message.find("who") != std::string::npos);
  }
}

TEST_CASE("contributions: a module that registers something else fails to load, naming each difference") {
  Fixture f;
  ScopedEnv mode("ORDINAUT_TEST_CONTRIB_MODE", "mismatch");
  make_extension(f.root.path(), "contrib", contrib_manifest(), "contrib");
  ExtensionHost& host = f.start();

  auto out = host.tools().call("ext.contrib.echo", parse_json(R"({"text":"hi"})"));
  REQUIRE_FALSE(out.ok());
  CHECK(state_of(host, "contrib") == "error");
  Json s = extension_status(host, "contrib");
  const std::string error = str(s["last_error"]);
  INFO(error);
  CHECK(error.find("tool ext.contrib.echo: inputSchema differs") != std::string::npos);
  CHECK(error.find("the manifest declares prompt ext.contrib.greet but the module did not register it") !=
        std::string::npos);
  // An extension in error lists nothing.
  CHECK_FALSE(has_name(host.tools().list(), "ext.contrib.echo"));
  CHECK_FALSE(has_name(host.prompts().list(), "ext.contrib.greet"));
  CHECK_FALSE(has_name(host.resources().list(), "ext://contrib/readme"));
}

TEST_CASE("contributions: a module registering more than the manifest declares fails to load") {
  Fixture f;
  // Declares only the tool: the module's resource, template and prompt are extra.
  const std::string only_tool = R"("contributes":{"tools":[{"name":"echo","description":"Echoes its text",
      "inputSchema":{"type":"object","required":["text"],"properties":{"text":{"type":"string"}}}}]})";
  make_extension(f.root.path(), "contrib", contrib_manifest(only_tool), "contrib");
  ExtensionHost& host = f.start();
  auto out = host.tools().call("ext.contrib.echo", parse_json(R"({"text":"hi"})"));
  REQUIRE_FALSE(out.ok());
  const std::string error = str(extension_status(host, "contrib")["last_error"]);
  INFO(error);
  CHECK(error.find("the module registered prompt ext.contrib.greet that the manifest does not declare") !=
        std::string::npos);
  CHECK(error.find("the module registered resource ext://contrib/readme") != std::string::npos);
}

TEST_CASE("contributions: a manifest without contributes is not checked and lists nothing before loading") {
  Fixture f;
  make_extension(f.root.path(), "contrib", manifest_json("contrib", "contrib_ext.so", R"(["TOOLS","RESOURCES","PROMPTS"])"),
                 "contrib");
  ExtensionHost& host = f.start();
  CHECK_FALSE(has_name(host.tools().list(), "ext.contrib.echo"));
  auto out = host.tools().call("ext.contrib.echo", parse_json(R"({"text":"hi"})"));
  REQUIRE_MESSAGE(out.ok(), out.error().message);
  CHECK(has_name(host.prompts().list(), "ext.contrib.greet"));
}

TEST_CASE("contributions: declared schemas and names are checked at discovery") {
  struct Case {
    const char* what;
    std::string contributes;
    std::string expect;
  };
  const Case cases[] = {
      {"input schema not an object type",
       R"("contributes":{"tools":[{"name":"t","description":"d","inputSchema":{"type":"string"}}]})",
       "/contributes/tools/0"},
      {"invalid tool name", R"("contributes":{"tools":[{"name":"a b","description":"d","inputSchema":{"type":"object"}}]})",
       "/contributes/tools/0"},
      {"tool without description", R"("contributes":{"tools":[{"name":"t","inputSchema":{"type":"object"}}]})",
       "description"},
      {"resource outside the namespace",
       R"("contributes":{"resources":[{"uri":"ext://other/x","name":"x"}]})", "/contributes/resources/0"},
      {"reserved scheme", R"("contributes":{"uriSchemes":["http"]})", "reserved"},
      {"template that does not parse",
       R"("contributes":{"resourceTemplates":[{"uriTemplate":"ext://contrib/{id","name":"x"}]})",
       "never closed"},
      {"prompt argument twice",
       R"("contributes":{"prompts":[{"name":"p","arguments":[{"name":"a"},{"name":"a"}]}]})", "listed twice"},
      {"unknown key", R"("contributes":{"tool":[]})", "/contributes"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    Fixture f;
    make_extension(f.root.path(), "contrib", contrib_manifest(c.contributes), "contrib");
    ExtensionHost& host = f.start();
    const std::string errors = discovery_errors(host);
    INFO(errors);
    CHECK(errors.find(c.expect) != std::string::npos);
    CHECK_FALSE(has_name(host.tools().list(), "ext.contrib.t"));
  }
}

TEST_CASE("contributions: a URI scheme claimed by a manifest serves that extension's resources") {
  Fixture f;
  const std::string contributes = R"("contributes":{"uriSchemes":["demo"],
      "resources":[{"uri":"demo://one","name":"one"}]})";
  make_extension(f.root.path(), "contrib", contrib_manifest(contributes), "contrib");
  ExtensionHost& host = f.start();
  CHECK(has_name(host.resources().list(), "demo://one"));
  // A second extension cannot take the same scheme.
  ordinaut::ResourceRegistry& registry = host.resources();
  CHECK_FALSE(registry.claim_scheme("demo", "other").ok());
  CHECK(registry.claim_scheme("demo", "contrib").ok());
}

TEST_CASE("contributions: disabling withdraws declarations, enabling lists them again") {
  Fixture f;
  make_extension(f.root.path(), "contrib", contrib_manifest(), "contrib");
  ExtensionHost& host = f.start();
  REQUIRE(has_name(host.tools().list(), "ext.contrib.echo"));
  REQUIRE(host.disable("contrib").ok());
  CHECK_FALSE(has_name(host.tools().list(), "ext.contrib.echo"));
  CHECK_FALSE(has_name(host.resources().list(), "ext://contrib/readme"));
  REQUIRE(host.enable("contrib").ok());
  CHECK(has_name(host.tools().list(), "ext.contrib.echo"));
  CHECK(state_of(host, "contrib") == "discovered");
  REQUIRE(host.reload("contrib").ok());
  CHECK(state_of(host, "contrib") == "active");
  CHECK(has_name(host.prompts().list(), "ext.contrib.greet"));
}

TEST_CASE("contributions: the host's status resource and its per-extension template") {
  Fixture f;
  make_extension(f.root.path(), "contrib", contrib_manifest(), "contrib");
  ExtensionHost& host = f.start();
  auto status = host.resources().read("ordinaut://host/status");
  REQUIRE(status.ok());
  CHECK((*status)[0].mime_type == "application/json");
  CHECK((*status)[0].text.find("\"contrib\"") != std::string::npos);
  auto one = host.resources().read("ordinaut://host/extensions/contrib");
  REQUIRE_MESSAGE(one.ok(), one.error().message);
  CHECK((*one)[0].text.find("\"state\":\"discovered\"") != std::string::npos);
  auto none = host.resources().read("ordinaut://host/extensions/nope");
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().code == "resource_not_found");
  auto ids = host.resources().complete("ordinaut://host/extensions/{id}", "id", "con", {});
  REQUIRE(ids.ok());
  CHECK(ids->values == std::vector<std::string>{"contrib"});
}
