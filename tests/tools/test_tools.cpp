// ToolRegistry: registration rules, schema-checked calls, errors, lazy
// resolution and change notification.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include <ordinaut/capability.hpp>
#include <ordinaut/tools.hpp>

#include "support.hpp"

using ordinaut::Json;
using ordinaut::JsonValue;
using ordinaut::ToolContext;
using ordinaut::ToolRegistry;
using ordinaut::ToolSpec;
using test_support::parse_json;

namespace {

constexpr const char* kAddInput =
    R"({"type":"object","required":["a","b"],"properties":{"a":{"type":"integer"},"b":{"type":"integer"},
        "tags":{"type":"array","items":{"type":"string"}}},"additionalProperties":false})";

ToolSpec add_tool(std::string name = "math.add") {
  return ToolSpec{
      .name = std::move(name),
      .title = "Add",
      .description = "Adds two integers",
      .input_schema = kAddInput,
      .output_schema = R"({"type":"object","required":["sum"],"properties":{"sum":{"type":"integer"}}})",
      .function = [](const JsonValue& in, ToolContext&) {
        Json out = ordinaut::json::object();
        out.AddMember("sum", in["a"].GetInt64() + in["b"].GetInt64(), out.GetAllocator());
        return out;
      },
  };
}

ToolSpec simple_tool(std::string name, ordinaut::ToolFunction fn, std::string output_schema = {}) {
  return ToolSpec{.name = std::move(name),
                  .title = {},
                  .description = "a test tool",
                  .input_schema = R"({"type":"object"})",
                  .output_schema = std::move(output_schema),
                  .function = std::move(fn)};
}

}  // namespace

TEST_CASE("tools: register, list, get and call") {
  ToolRegistry registry;
  REQUIRE(registry.add(add_tool()).ok());
  auto list = registry.list();
  REQUIRE(list.size() == 1);
  CHECK(list[0].name == "math.add");
  CHECK(list[0].title == "Add");
  CHECK(list[0].description == "Adds two integers");
  CHECK(list[0].owner == "core");
  REQUIRE(list[0].input_schema != nullptr);
  CHECK((*list[0].input_schema)["required"].Size() == 2);
  REQUIRE(list[0].output_schema != nullptr);

  auto info = registry.get("math.add");
  REQUIRE(info);
  CHECK(info->name == "math.add");
  CHECK_FALSE(registry.get("math.sub"));

  Json in = parse_json(R"({"a":40,"b":2})");
  auto out = registry.call("math.add", in);
  REQUIRE_MESSAGE(out.ok(), (out.ok() ? "" : out.error().message));
  CHECK((*out)["sum"].GetInt64() == 42);

  auto stats = registry.stats();
  REQUIRE(stats.size() == 1);
  CHECK(stats[0].calls == 1);
  CHECK(stats[0].errors == 0);
}

TEST_CASE("tools: calling an unknown tool is tool_not_found") {
  ToolRegistry registry;
  Json in = parse_json("{}");
  auto r = registry.call("nope", in);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == "tool_not_found");
  CHECK(r.error().message.find("nope") != std::string::npos);
}

TEST_CASE("tools: wrong input types give invalid_input naming the pointer") {
  ToolRegistry registry;
  REQUIRE(registry.add(add_tool()).ok());
  std::atomic<int> calls{0};

  SUBCASE("string instead of integer") {
    auto r = registry.call("math.add", parse_json(R"({"a":"forty","b":2})"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "invalid_input");
    CHECK(r.error().pointer == "/a");
    CHECK(r.error().message.find("/a: expected integer, got string") != std::string::npos);
    CHECK(r.error().message.find("math.add") != std::string::npos);
  }
  SUBCASE("nested array item") {
    auto r = registry.call("math.add", parse_json(R"({"a":1,"b":2,"tags":["x",3]})"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "invalid_input");
    CHECK(r.error().pointer == "/tags/1");
  }
  SUBCASE("missing property") {
    auto r = registry.call("math.add", parse_json(R"({"a":1})"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "invalid_input");
    CHECK(r.error().pointer == "/b");
  }
  SUBCASE("extra property") {
    auto r = registry.call("math.add", parse_json(R"({"a":1,"b":2,"c":3})"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().pointer == "/c");
  }
  SUBCASE("not an object") {
    auto r = registry.call("math.add", parse_json("[1,2]"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "invalid_input");
    CHECK(r.error().message.find("expected object, got array") != std::string::npos);
  }
  auto stats = registry.stats();
  CHECK(stats[0].errors == stats[0].calls);
}

TEST_CASE("tools: the function never runs on invalid input") {
  ToolRegistry registry;
  std::atomic<int> runs{0};
  auto spec = add_tool();
  spec.function = [&](const JsonValue&, ToolContext&) {
    ++runs;
    return parse_json(R"({"sum":0})");
  };
  REQUIRE(registry.add(std::move(spec)).ok());
  CHECK_FALSE(registry.call("math.add", parse_json(R"({"a":true,"b":1})")).ok());
  CHECK(runs == 0);
  CHECK(registry.call("math.add", parse_json(R"({"a":1,"b":1})")).ok());
  CHECK(runs == 1);
}

TEST_CASE("tools: an output that breaks the output schema is invalid_output") {
  ToolRegistry registry;
  auto spec = add_tool();
  spec.function = [](const JsonValue&, ToolContext&) { return parse_json(R"({"sum":"many"})"); };
  REQUIRE(registry.add(std::move(spec)).ok());
  auto r = registry.call("math.add", parse_json(R"({"a":1,"b":2})"));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == "invalid_output");
  CHECK(r.error().pointer == "/sum");
  CHECK(r.error().message.find("output schema") != std::string::npos);
}

TEST_CASE("tools: without an output schema any output is returned") {
  ToolRegistry registry;
  REQUIRE(registry.add(simple_tool("free", [](const JsonValue&, ToolContext&) { return parse_json("[1,\"x\"]"); }))
              .ok());
  CHECK_FALSE(registry.get("free")->output_schema);
  auto r = registry.call("free", parse_json("{}"));
  REQUIRE(r.ok());
  CHECK(r->IsArray());
}

TEST_CASE("tools: a throwing tool gives tool_failed; a ToolError keeps its code") {
  ToolRegistry registry;
  REQUIRE(registry.add(simple_tool("t.std", [](const JsonValue&, ToolContext&) -> Json {
                throw std::runtime_error("disk on fire");
              })).ok());
  REQUIRE(registry.add(simple_tool("t.tool", [](const JsonValue&, ToolContext&) -> Json {
                throw ordinaut::ToolError("quota_exceeded", "only 3 calls a day");
              })).ok());
  REQUIRE(registry.add(simple_tool("t.odd", [](const JsonValue&, ToolContext&) -> Json { throw 42; })).ok());

  auto a = registry.call("t.std", parse_json("{}"));
  REQUIRE_FALSE(a.ok());
  CHECK(a.error().code == "tool_failed");
  CHECK(a.error().message.find("disk on fire") != std::string::npos);

  auto b = registry.call("t.tool", parse_json("{}"));
  REQUIRE_FALSE(b.ok());
  CHECK(b.error().code == "quota_exceeded");
  CHECK(b.error().message.find("only 3 calls a day") != std::string::npos);

  auto c = registry.call("t.odd", parse_json("{}"));
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().code == "tool_failed");

  // The registry is still usable afterwards.
  for (const auto& s : registry.stats()) CHECK(s.errors == 1);
}

TEST_CASE("tools: a ToolError's details and a CapabilityError reach the caller as structured errors") {
  ToolRegistry registry;
  REQUIRE(registry.add(simple_tool("t.details", [](const JsonValue&, ToolContext&) -> Json {
                throw ordinaut::ToolError("conflict", "order 7 is closed", R"({"order":7})");
              })).ok());
  REQUIRE(registry.add(simple_tool("t.denied", [](const JsonValue&, ToolContext&) -> Json {
                throw ordinaut::CapabilityError("shop", ordinaut::Capability::EVENTS_PUB);
              })).ok());
  auto a = registry.call("t.details", parse_json("{}"));
  REQUIRE_FALSE(a.ok());
  CHECK(a.error().code == "conflict");
  CHECK(a.error().details == R"({"order":7})");

  auto b = registry.call("t.denied", parse_json("{}"));
  REQUIRE_FALSE(b.ok());
  CHECK(b.error().code == "forbidden");
  CHECK(b.error().message.find("EVENTS_PUB") != std::string::npos);
  CHECK(b.error().details == R"({"missing_capability":"EVENTS_PUB","extension":"shop"})");
}

TEST_CASE("tools: the context reaches the tool") {
  struct Recording : ToolContext {
    std::vector<std::string> logs;
    void log(std::string_view level, std::string_view message) override {
      logs.push_back(std::string(level) + ":" + std::string(message));
    }
  } context;
  ToolRegistry registry;
  REQUIRE(registry.add(simple_tool("t.log", [](const JsonValue&, ToolContext& c) {
                c.log("info", "working");
                CHECK_FALSE(c.cancelled());
                return ordinaut::json::object();
              })).ok());
  REQUIRE(registry.call("t.log", parse_json("{}"), &context).ok());
  CHECK(context.logs == std::vector<std::string>{"info:working"});
  // Without a context the default one is used and ask_client is unsupported.
  REQUIRE(registry.add(simple_tool("t.ask", [](const JsonValue& in, ToolContext& c) {
                auto r = c.ask_client("sampling/createMessage", in, std::chrono::milliseconds(10));
                REQUIRE_FALSE(r.ok());
                CHECK(r.error().code == "unsupported");
                return ordinaut::json::object();
              })).ok());
  CHECK(registry.call("t.ask", parse_json("{}")).ok());
}

TEST_CASE("tools: registration is refused for bad specs") {
  ToolRegistry registry;
  auto expect = [&](ToolSpec spec, const std::string& code, const std::string& text, std::string_view owner = "core") {
    auto r = registry.add(std::move(spec), owner);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == code);
    CHECK_MESSAGE(r.error().message.find(text) != std::string::npos, r.error().message);
  };
  expect(add_tool("bad name"), "invalid_tool", "\"bad name\" is invalid");
  expect(add_tool(""), "invalid_tool", "is invalid");
  expect(add_tool("a..b"), "invalid_tool", "is invalid");
  expect(add_tool(std::string(129, 'a')), "invalid_tool", "is invalid");
  auto no_desc = add_tool("x.nodesc");
  no_desc.description.clear();
  expect(std::move(no_desc), "invalid_tool", "description is required");
  auto no_fn = add_tool("x.nofn");
  no_fn.function = nullptr;
  expect(std::move(no_fn), "invalid_tool", "function is empty");
  auto bad_schema = add_tool("x.badschema");
  bad_schema.input_schema = "{not json";
  expect(std::move(bad_schema), "invalid_tool", "input schema");
  auto not_object = add_tool("x.notobject");
  not_object.input_schema = R"({"type":"string"})";
  expect(std::move(not_object), "invalid_tool", "\"type\": \"object\"");
  auto bad_output = add_tool("x.badout");
  bad_output.output_schema = "[]";
  expect(std::move(bad_output), "invalid_tool", "output schema");
  expect(add_tool("ext.good.add"), "tool_namespace", "belong to extensions");
  CHECK(registry.list().empty());
}

TEST_CASE("tools: a duplicate name is refused and the first stays") {
  ToolRegistry registry;
  REQUIRE(registry.add(add_tool()).ok());
  auto spec = simple_tool("math.add", [](const JsonValue&, ToolContext&) { return parse_json(R"({"sum":-1})"); });
  auto r = registry.add(std::move(spec));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == "duplicate_tool");
  CHECK(r.error().message.find("math.add") != std::string::npos);
  CHECK(registry.list().size() == 1);
  CHECK(registry.call("math.add", parse_json(R"({"a":1,"b":1})")).value()["sum"].GetInt64() == 2);
}

TEST_CASE("tools: an extension registers only inside ext.{id}.") {
  ToolRegistry registry;
  ordinaut::ToolRegistrar registrar(registry, "weather");
  CHECK(registrar.prefix() == "ext.weather.");
  REQUIRE(registrar.try_add(add_tool("ext.weather.forecast")).ok());
  CHECK(registry.get("ext.weather.forecast")->owner == "weather");

  for (std::string name : {"forecast", "ext.other.forecast", "ext.weather", "ext.weatherx.forecast", "core.tool"}) {
    CAPTURE(name);
    auto r = registrar.try_add(add_tool(name));
    REQUIRE_FALSE(r.ok());
    CHECK((r.error().code == "tool_namespace" || r.error().code == "invalid_tool"));
  }
  auto r = registrar.try_add(add_tool("ext.other.forecast"));
  CHECK(r.error().code == "tool_namespace");
  CHECK(r.error().message.find("ext.weather.") != std::string::npos);
  // add() throws with the registry's message, so that setup() fails with it.
  CHECK_THROWS_WITH_AS(registrar.add(add_tool("ext.other.x")), doctest::Contains("outside the namespace"),
                       std::invalid_argument);
  CHECK(registry.list().size() == 1);
}

TEST_CASE("tools: a frozen registry refuses changes but still calls") {
  ToolRegistry registry;
  REQUIRE(registry.add(add_tool()).ok());
  registry.freeze();
  CHECK(registry.frozen());
  auto r = registry.add(add_tool("math.add2"));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == "registry_frozen");
  CHECK_FALSE(registry.remove("math.add"));
  CHECK(registry.list().size() == 1);
  CHECK(registry.call("math.add", parse_json(R"({"a":1,"b":1})")).ok());
  // A stopped extension's tools still go: the host relies on it.
  REQUIRE_FALSE(registry.add(add_tool("ext.a.one"), "a").ok());
  CHECK(registry.remove_owner("core") == 1);
  CHECK(registry.list().empty());
}

TEST_CASE("tools: remove and remove_owner") {
  ToolRegistry registry;
  REQUIRE(registry.add(add_tool("ext.a.one"), "a").ok());
  REQUIRE(registry.add(add_tool("ext.a.two"), "a").ok());
  REQUIRE(registry.add(add_tool("ext.b.one"), "b").ok());
  CHECK(registry.remove_owner("a") == 2);
  CHECK(registry.list().size() == 1);
  CHECK(registry.remove("ext.b.one"));
  CHECK_FALSE(registry.remove("ext.b.one"));
  CHECK(registry.list().empty());
}

TEST_CASE("tools: the lazy resolver is asked for missing names only") {
  ToolRegistry registry;
  REQUIRE(registry.add(add_tool()).ok());
  std::vector<std::string> asked;
  registry.set_resolver([&](std::string_view name) {
    asked.emplace_back(name);
    if (name == "ext.lazy.hello") {
      REQUIRE(registry.add(simple_tool("ext.lazy.hello",
                                       [](const JsonValue&, ToolContext&) { return parse_json(R"({"hi":1})"); }),
                           "lazy")
                  .ok());
    }
  });
  CHECK(registry.call("math.add", parse_json(R"({"a":1,"b":1})")).ok());
  CHECK(asked.empty());

  auto r = registry.call("ext.lazy.hello", parse_json("{}"));
  REQUIRE(r.ok());
  CHECK((*r)["hi"].GetInt() == 1);
  CHECK(asked == std::vector<std::string>{"ext.lazy.hello"});

  CHECK_FALSE(registry.get("ext.lazy.absent"));
  CHECK(registry.call("ext.lazy.absent", parse_json("{}")).error().code == "tool_not_found");
  CHECK(asked.size() == 3);
  CHECK(registry.get("ext.lazy.hello"));  // now registered: no new question
  CHECK(asked.size() == 3);
}

TEST_CASE("tools: on_change listeners and generation") {
  ToolRegistry registry;
  int changes = 0;
  auto id = registry.on_change([&] { ++changes; });
  const auto g0 = registry.generation();
  REQUIRE(registry.add(add_tool()).ok());
  CHECK(changes == 1);
  CHECK(registry.generation() == g0 + 1);
  CHECK_FALSE(registry.add(add_tool()).ok());  // refused: no change
  CHECK(changes == 1);
  CHECK(registry.remove("math.add"));
  CHECK(changes == 2);
  CHECK(registry.generation() == g0 + 2);
  registry.remove_listener(id);
  REQUIRE(registry.add(add_tool()).ok());
  CHECK(changes == 2);
  CHECK(registry.generation() == g0 + 3);
}

TEST_CASE("tools: a tool may call another tool; concurrent calls are counted") {
  ToolRegistry registry;
  REQUIRE(registry.add(add_tool()).ok());
  REQUIRE(registry.add(simple_tool("math.double", [&](const JsonValue& in, ToolContext&) {
                Json args = parse_json(R"({"a":0,"b":0})");
                args["a"].SetInt64(in["x"].GetInt64());
                args["b"].SetInt64(in["x"].GetInt64());
                auto r = registry.call("math.add", args);
                if (!r) throw std::runtime_error(r.error().message);
                return std::move(r).value();
              })).ok());
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        Json in = ordinaut::json::object();
        in.AddMember("x", t * 1000 + i, in.GetAllocator());
        auto r = registry.call("math.double", in);
        if (r && (*r)["sum"].GetInt64() == 2 * (t * 1000 + i)) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(ok == 800);
  for (const auto& s : registry.stats()) CHECK(s.calls == 800);
}

TEST_CASE("tools: a declared tool is listed, loads through the resolver and is replaced by the registration") {
  ordinaut::ToolRegistry reg;
  REQUIRE(reg.declare({.name = "ext.lazy.t", .description = "lazy tool",
                       .input_schema = R"({"type":"object","properties":{"n":{"type":"integer"}}})"},
                      "lazy")
              .ok());
  reg.freeze();  // the host declares at discovery, after freezing is possible
  auto listed = reg.list();
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].declared);
  auto unavailable = reg.call("ext.lazy.t", parse_json("{}"));
  REQUIRE_FALSE(unavailable.ok());
  CHECK(unavailable.error().code == "extension_unavailable");
  CHECK(reg.declare({.name = "ext.lazy.u", .description = "u"}, "lazy").ok());
  CHECK(reg.declare({.name = "ext.lazy.t", .description = "again"}, "other").error().code == "tool_namespace");
  CHECK(reg.declare({.name = "ext.lazy.t", .description = "again"}, "lazy").error().code == "duplicate_tool");
  CHECK(reg.remove_owner("lazy") == 2);
}

TEST_CASE("tools: the resolver's registration replaces the owner's declaration") {
  ordinaut::ToolRegistry reg;
  REQUIRE(reg.declare({.name = "ext.lazy.t", .description = "lazy tool"}, "lazy").ok());
  int loads = 0;
  reg.set_resolver([&](std::string_view) {
    ++loads;
    REQUIRE(reg.add({.name = "ext.lazy.t",
                     .description = "lazy tool",
                     .function = [](const ordinaut::JsonValue&, ordinaut::ToolContext&) {
                       return parse_json(R"({"ok":true})");
                     },
                     .annotations = R"({"readOnlyHint":true})"},
                    "lazy")
                .ok());
  });
  auto out = reg.call("ext.lazy.t", parse_json("{}"));
  REQUIRE(out.ok());
  CHECK(ordinaut::json::dump(*out) == R"({"ok":true})");
  CHECK(loads == 1);
  auto info = reg.get("ext.lazy.t");
  REQUIRE(info);
  CHECK_FALSE(info->declared);
  REQUIRE(info->annotations);
  CHECK(ordinaut::json::dump(*info->annotations) == R"({"readOnlyHint":true})");
  // Another owner cannot take a declared name; remove_registered keeps nothing
  // registered but would keep declarations.
  CHECK(reg.remove_registered("lazy") == 1);
  CHECK(reg.list().empty());
  CHECK(reg.add({.name = "ext.x.bad", .description = "d",
                 .function = [](const ordinaut::JsonValue&, ordinaut::ToolContext&) { return ordinaut::json::object(); },
                 .annotations = "[1]"},
                "x")
            .error()
            .message.find("annotations must be a JSON object") != std::string::npos);
}
