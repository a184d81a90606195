// ResourceRegistry and PromptRegistry: namespaces, templates, declarations,
// completion, subscriptions, errors, and the MCP JSON forms.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

#include <ordinaut/prompts.hpp>
#include <ordinaut/resources.hpp>

using namespace ordinaut;

namespace {

ResourceReadFunction text_of(std::string text) {
  return [text](const ResourceRequest& r) { return std::vector<ResourceContents>{ResourceContents::make_text(r.uri, text)}; };
}

}  // namespace

TEST_CASE("resources: URIs are namespaced per extension") {
  ResourceRegistry reg;
  CHECK(reg.add({.uri = "ext://notes/a", .name = "a", .read = text_of("A")}, "notes").ok());
  auto other = reg.add({.uri = "ext://other/a", .name = "a", .read = text_of("A")}, "notes");
  REQUIRE_FALSE(other.ok());
  CHECK(other.error().code == "resource_namespace");
  auto bare = reg.add({.uri = "ext://notes/", .name = "a", .read = text_of("A")}, "notes");
  CHECK_FALSE(bare.ok());
  auto scheme = reg.add({.uri = "test://x", .name = "x", .read = text_of("X")}, "notes");
  REQUIRE_FALSE(scheme.ok());
  CHECK(scheme.error().message.find("contributes.uriSchemes") != std::string::npos);
  REQUIRE(reg.claim_scheme("test", "notes").ok());
  CHECK(reg.add({.uri = "test://x", .name = "x", .read = text_of("X")}, "notes").ok());
  CHECK(reg.claim_scheme("test", "other").error().message.find("already claimed by 'notes'") != std::string::npos);
  CHECK_FALSE(reg.claim_scheme("HTTP", "notes").ok());
  CHECK_FALSE(reg.claim_scheme("ordinaut", "notes").ok());
  CHECK_FALSE(reg.claim_scheme("1abc", "notes").ok());
  CHECK(reg.add({.uri = "ordinaut://host/x", .name = "x", .read = text_of("X")}, "core").ok());
  CHECK_FALSE(reg.add({.uri = "ext://core/x", .name = "x", .read = text_of("X")}, "core").ok());
  auto dup = reg.add({.uri = "ext://notes/a", .name = "again", .read = text_of("A")}, "notes");
  REQUIRE_FALSE(dup.ok());
  CHECK(dup.error().code == "duplicate_resource");
  CHECK_FALSE(reg.add({.uri = "ext://notes/\xff", .name = "bad", .read = text_of("A")}, "notes").ok());
  CHECK_FALSE(reg.add({.uri = "ext://notes/n", .name = "", .read = text_of("A")}, "notes").ok());
  CHECK_FALSE(reg.add({.uri = "ext://notes/n", .name = "n"}, "notes").ok());
}

TEST_CASE("resources: templates match level-1 variables and report them") {
  CHECK(match_uri_template("ext://n/{id}/data", "ext://n/42/data") == StringMap{{"id", "42"}});
  CHECK_FALSE(match_uri_template("ext://n/{id}/data", "ext://n/4/2/data").has_value());
  CHECK(match_uri_template("ext://n/{+path}", "ext://n/a/b/c") == StringMap{{"path", "a/b/c"}});
  CHECK(match_uri_template("ext://n/{a}-{b}", "ext://n/x-y-z") == StringMap{{"a", "x"}, {"b", "y-z"}});
  CHECK_FALSE(match_uri_template("ext://n/{id}", "ext://n/").has_value());
  CHECK_FALSE(match_uri_template("ext://n/{id", "ext://n/1").has_value());

  ResourceRegistry reg;
  CHECK(reg.add_template({.uri_template = "ext://n/{id}/data",
                          .name = "data",
                          .read = [](const ResourceRequest& r) {
                            return std::vector<ResourceContents>{
                                ResourceContents::make_text("", "data of " + r.variables.at("id"))};
                          }},
                         "n")
            .ok());
  auto read = reg.read("ext://n/7/data");
  REQUIRE(read.ok());
  CHECK((*read)[0].text == "data of 7");
  CHECK((*read)[0].uri == "ext://n/7/data");  // filled in when the reader leaves it empty
  auto missing = reg.read("ext://n/7/other");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == "resource_not_found");

  for (const char* bad : {"ext://n/{}", "ext://n/{a}{b}", "ext://n/{a}/{a}", "ext://n/x}", "ext://n/plain"}) {
    CAPTURE(bad);
    auto r = reg.add_template({.uri_template = bad, .name = "x", .read = text_of("X")}, "n");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "invalid_resource");
  }
}

TEST_CASE("resources: read failures are errors with the reader's message") {
  ResourceRegistry reg;
  REQUIRE(reg.add({.uri = "ext://n/boom",
                   .name = "boom",
                   .read = [](const ResourceRequest&) -> std::vector<ResourceContents> {
                     throw std::runtime_error("disk on fire");
                   }},
                  "n")
              .ok());
  REQUIRE(reg.add({.uri = "ext://n/gone",
                   .name = "gone",
                   .read = [](const ResourceRequest&) -> std::vector<ResourceContents> {
                     throw ResourceError("resource_not_found", "deleted");
                   }},
                  "n")
              .ok());
  auto boom = reg.read("ext://n/boom");
  REQUIRE_FALSE(boom.ok());
  CHECK(boom.error().code == "read_failed");
  CHECK(boom.error().message.find("disk on fire") != std::string::npos);
  CHECK(reg.read("ext://n/gone").error().code == "resource_not_found");
}

TEST_CASE("resources: a declaration is listed, resolved on read, and replaced by the registration") {
  ResourceRegistry reg;
  REQUIRE(reg.declare({.uri = "ext://lazy/doc", .name = "doc", .mime_type = "text/markdown"}, "lazy").ok());
  REQUIRE(reg.list().size() == 1);
  CHECK(reg.list()[0].declared);
  // Without a resolver that loads anything, reading says why.
  auto unavailable = reg.read("ext://lazy/doc");
  REQUIRE_FALSE(unavailable.ok());
  CHECK(unavailable.error().code == "extension_unavailable");

  std::vector<std::string> resolved;
  reg.set_resolver([&](std::string_view owner) {
    resolved.emplace_back(owner);
    REQUIRE(reg.add({.uri = "ext://lazy/doc", .name = "doc", .mime_type = "text/markdown", .read = text_of("# Doc")},
                    "lazy")
                .ok());
  });
  auto read = reg.read("ext://lazy/doc");
  REQUIRE(read.ok());
  CHECK((*read)[0].text == "# Doc");
  CHECK((*read)[0].mime_type == "text/markdown");
  CHECK(resolved == std::vector<std::string>{"lazy"});
  CHECK_FALSE(reg.list()[0].declared);
  // Another owner may not take a declared URI.
  CHECK(reg.declare({.uri = "ext://lazy/x", .name = "x"}, "other").error().code == "resource_namespace");
  // remove_registered keeps declarations, remove_owner drops them.
  REQUIRE(reg.declare({.uri = "ext://lazy/more", .name = "more"}, "lazy").ok());
  CHECK(reg.remove_registered("lazy") == 1);
  CHECK(reg.list().size() == 1);
  CHECK(reg.remove_owner("lazy") == 1);
  CHECK(reg.list().empty());
}

TEST_CASE("resources: completion is capped at 100 values with the total") {
  ResourceRegistry reg;
  REQUIRE(reg.add_template({.uri_template = "ext://n/{id}",
                            .name = "n",
                            .read = text_of("x"),
                            .complete =
                                [](std::string_view name, std::string_view value, const StringMap& context) {
                                  std::vector<std::string> out;
                                  for (int i = 0; i < 250; ++i) {
                                    out.push_back(std::string(value) + std::to_string(i) + std::string(name) +
                                                  (context.count("k") ? context.at("k") : ""));
                                  }
                                  return out;
                                }},
                           "n")
              .ok());
  auto c = reg.complete("ext://n/{id}", "id", "v", {{"k", "!"}});
  REQUIRE(c.ok());
  CHECK(c->values.size() == 100);
  CHECK(c->total == 250);
  CHECK(c->has_more);
  CHECK(c->values[0] == "v0id!");
  CHECK(reg.complete("ext://n/{id}", "nope", "", {}).error().code == "invalid_params");
  CHECK(reg.complete("ext://n/{other}", "id", "", {}).error().code == "resource_not_found");
  Json j = to_json(*c);
  CHECK(j["completion"]["total"].GetUint64() == 250);
  CHECK(j["completion"]["hasMore"].GetBool());
}

TEST_CASE("resources: subscribers hear of updates to their URI only") {
  ResourceRegistry reg;
  std::vector<std::string> heard;
  const auto a = reg.subscribe("ext://n/a", [&](std::string_view uri) { heard.emplace_back(uri); });
  reg.subscribe("ext://n/b", [&](std::string_view uri) { heard.emplace_back(std::string("b:") + std::string(uri)); });
  CHECK(reg.notify_updated("ext://n/a") == 1);
  CHECK(reg.notify_updated("ext://n/c") == 0);
  reg.unsubscribe(a);
  CHECK(reg.notify_updated("ext://n/a") == 0);
  CHECK(reg.notify_updated("ext://n/b") == 1);
  CHECK(heard == std::vector<std::string>{"ext://n/a", "b:ext://n/b"});
}

TEST_CASE("resources: concurrent reads, registrations and notifications") {
  ResourceRegistry reg;
  REQUIRE(reg.add({.uri = "ext://n/r", .name = "r", .read = text_of("R")}, "n").ok());
  std::atomic<int> notified{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        if (t == 0) {
          (void)reg.add({.uri = "ext://n/x" + std::to_string(i), .name = "x", .read = text_of("X")}, "n");
        } else if (t == 1) {
          const auto id = reg.subscribe("ext://n/r", [&](std::string_view) { ++notified; });
          reg.notify_updated("ext://n/r");
          reg.unsubscribe(id);
        } else {
          auto r = reg.read("ext://n/r");
          CHECK(r.ok());
          (void)reg.list();
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(notified.load() >= 200);
  CHECK(reg.list().size() == 201);
}

TEST_CASE("resources: MCP JSON forms, base64 for binary") {
  CHECK(base64_encode("") == "");
  CHECK(base64_encode("f") == "Zg==");
  CHECK(base64_encode("fo") == "Zm8=");
  CHECK(base64_encode("foo") == "Zm9v");
  CHECK(base64_encode(std::string("\x00\xff\x10", 3)) == "AP8Q");
  Json text = to_json(ResourceContents::make_text("ext://n/t", "hi", "text/plain"));
  CHECK(json::dump(text) == R"({"uri":"ext://n/t","mimeType":"text/plain","text":"hi"})");
  Json blob = to_json(ResourceContents::make_blob("ext://n/b", "foo", "application/octet-stream"));
  CHECK(json::dump(blob) == R"({"uri":"ext://n/b","mimeType":"application/octet-stream","blob":"Zm9v"})");
  Json info = to_json(ResourceInfo{"ext://n/{id}", "n", "", "d", "text/plain", "n", true, false});
  CHECK(json::dump(info) == R"({"uriTemplate":"ext://n/{id}","name":"n","description":"d","mimeType":"text/plain"})");
}

TEST_CASE("prompts: namespaces, arguments and errors") {
  PromptRegistry reg;
  auto hello = [](const StringMap& args) {
    return PromptResult{.description = "d",
                        .messages = {{.role = "user", .content = ContentBlock::make_text("hi " + args.at("who"))}}};
  };
  CHECK(reg.add({.name = "ext.p.hello", .arguments = {{.name = "who", .required = true}, {.name = "tone"}}, .get = hello},
                "p")
            .ok());
  CHECK(reg.add({.name = "ext.q.hello", .get = hello}, "p").error().code == "prompt_namespace");
  CHECK(reg.add({.name = "ext.hello", .get = hello}, "core").error().code == "prompt_namespace");
  CHECK(reg.add({.name = "ext.p.bad name", .get = hello}, "p").error().code == "invalid_prompt");
  CHECK(reg.add({.name = "ext.p.x"}, "p").error().code == "invalid_prompt");
  CHECK(reg.add({.name = "ext.p.y", .arguments = {{.name = ""}}, .get = hello}, "p").error().code == "invalid_prompt");
  CHECK(reg.add({.name = "ext.p.hello", .get = hello}, "p").error().code == "duplicate_prompt");

  auto got = reg.get("ext.p.hello", {{"who", "Ada"}});
  REQUIRE(got.ok());
  CHECK(got->messages[0].content.text == "hi Ada");
  auto missing = reg.get("ext.p.hello", {});
  CHECK(missing.error().code == "invalid_arguments");
  CHECK(missing.error().message.find("who") != std::string::npos);
  auto unknown = reg.get("ext.p.hello", {{"who", "x"}, {"colour", "red"}});
  CHECK(unknown.error().code == "invalid_arguments");
  CHECK(unknown.error().message.find("colour") != std::string::npos);
  CHECK(reg.get("ext.p.nope", {}).error().code == "prompt_not_found");

  REQUIRE(reg.add({.name = "ext.p.fail",
                   .get = [](const StringMap&) -> PromptResult { throw PromptError("quota", "too many"); }},
                  "p")
              .ok());
  auto fail = reg.get("ext.p.fail", {});
  CHECK(fail.error().code == "quota");
  CHECK(fail.error().message.find("too many") != std::string::npos);
  CHECK(reg.complete("ext.p.hello", "who", "", {}).ok());  // no completion function: no values
  CHECK(reg.complete("ext.p.hello", "nope", "", {}).error().code == "invalid_params");
}

TEST_CASE("prompts: declared prompts resolve on first get and complete") {
  PromptRegistry reg;
  REQUIRE(reg.declare({.name = "ext.lazy.p", .arguments = {{.name = "a"}}}, "lazy").ok());
  CHECK(reg.list()[0].declared);
  int loads = 0;
  reg.set_resolver([&](std::string_view name) {
    ++loads;
    CHECK(name == "ext.lazy.p");
    REQUIRE(reg.add({.name = "ext.lazy.p",
                     .arguments = {{.name = "a"}},
                     .get = [](const StringMap&) { return PromptResult{}; },
                     .complete = [](std::string_view, std::string_view v, const StringMap&) {
                       return std::vector<std::string>{std::string(v) + "1"};
                     }},
                    "lazy")
                .ok());
  });
  auto c = reg.complete("ext.lazy.p", "a", "x", {});
  REQUIRE(c.ok());
  CHECK(c->values == std::vector<std::string>{"x1"});
  CHECK(loads == 1);
  CHECK(reg.get("ext.lazy.p", {}).ok());
  CHECK(loads == 1);
}

TEST_CASE("prompts: MCP JSON forms of messages and content") {
  PromptResult r{.description = "desc",
                 .messages = {{.role = "user", .content = ContentBlock::make_text("t")},
                              {.role = "assistant", .content = ContentBlock::make_image("foo", "image/png")},
                              {.role = "user",
                               .content = ContentBlock::make_resource(
                                   ResourceContents::make_text("ext://n/a", "A", "text/plain"))}}};
  CHECK(json::dump(to_json(r)) ==
        R"({"description":"desc","messages":[{"role":"user","content":{"type":"text","text":"t"}},)"
        R"({"role":"assistant","content":{"type":"image","data":"Zm9v","mimeType":"image/png"}},)"
        R"({"role":"user","content":{"type":"resource","resource":{"uri":"ext://n/a","mimeType":"text/plain","text":"A"}}}]})");
  PromptInfo info{"ext.p.x", "", "d", {{.name = "a", .required = true}}, "p", false};
  CHECK(json::dump(to_json(info)) == R"({"name":"ext.p.x","description":"d","arguments":[{"name":"a","required":true}]})");
}
