// Test-only extension: the tools, resources and prompts the official MCP
// conformance suite uses (test_simple_text, test_tool_with_logging,
// test_sampling, test://static-text, test_simple_prompt, ...), written as
// ordinary registry entries under ext.mcp_conformance.* and the "test" URI
// scheme its manifest claims. The tests start the server with
// ORDINAUT_MCP_SHORT_NAMES=mcp_conformance so that MCP clients see the short
// names the suite expects. Also "echo" (with an output schema) for the SDK
// client check and the benchmark, "bump_watched" (changes
// test://watched-resource and notifies its subscribers) and test://error (a
// read that fails) for the mcp_http tests.
//
// extension.json declares all of it under "contributes": the host lists it
// before the module loads and refuses to load a module that registers
// anything else, so the two must be changed together.
#include <atomic>
#include <cstdint>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include <ordinaut/extension.hpp>

namespace {

using namespace ordinaut;

// 1x1 PNG and a 16-sample silent WAV (8 kHz, 16 bit, mono).
constexpr const char* kPng =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
constexpr const char* kWav = "UklGRjQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YRAAAAAAAAAAAAAAAAAAAAAAAAAA";

Json parse(const std::string& text) {
  auto doc = json::parse(text);
  if (!doc) throw std::logic_error("bad JSON in test tool: " + doc.error().message);
  return std::move(doc).value();
}

std::atomic<int> g_cancellations{0};
std::atomic<int> g_watched_version{1};

// Standard base64 to bytes (the fixed test data above is valid base64).
std::string base64_decode(std::string_view text) {
  static constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    const auto at = kAlphabet.find(c);
    if (at == std::string_view::npos) continue;  // padding
    bits = (bits << 6) | static_cast<std::uint32_t>(at);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xFF);
    }
  }
  return out;
}

// The values completion offers for test_prompt_with_arguments and the template's {id}.
std::vector<std::string> starting_with(std::vector<std::string> candidates, std::string_view typed) {
  std::erase_if(candidates, [&](const std::string& c) { return !c.starts_with(typed); });
  return candidates;
}

// Keys released by release_reconnection, awaited by test_reconnection.
std::mutex g_release_mutex;
std::condition_variable g_released;
std::set<std::string> g_release_keys;

std::string jstr(std::string_view s) { return "\"" + json::escape(s) + "\""; }

Json text_result(std::string_view text) {
  return parse(fmt::format(R"({{"content":[{{"type":"text","text":{}}}]}})", jstr(text)));
}

std::string field(const JsonValue& input, const char* name) {
  auto v = json::get_string(input, name);
  return v ? std::string(*v) : std::string();
}

// Asks the client for an elicitation and describes the answer.
Json elicit(ToolContext& ctx, const std::string& params, const char* prefix) {
  Json p = parse(params);
  auto answer = ctx.ask_client("elicitation/create", p, std::chrono::seconds(30));
  if (!answer) throw ToolError(answer.error().code, answer.error().message);
  auto action = json::get_string(*answer, "action");
  std::string content = answer->HasMember("content") ? json::dump((*answer)["content"]) : "{}";
  return text_result(fmt::format("{}action={}, content={}", prefix, action ? *action : "?", content));
}

class McpConformance final : public Extension {
 public:
  ExtensionInfo info() const override {
    return {"mcp_conformance", "MCP conformance tools (test only)", "0.1.0",
            "The test_* tools, resources and prompts the official MCP conformance suite uses, plus echo and "
            "bump_watched for the mcp_http tests and the benchmark"};
  }
  CapabilitySet requested_capabilities() const override {
    return {Capability::TOOLS, Capability::RESOURCES, Capability::PROMPTS};
  }

  std::optional<Router> setup(SetupContext& context) override {
    add_tools(context);
    add_resources(context);
    add_prompts(context);
    return std::nullopt;
  }

 private:
  static void add_resources(SetupContext& context) {
    ResourceRegistrar& resources = context.resource_registrar();
    resources.add({.uri = "test://static-text",
                   .name = "static-text",
                   .description = "A static text resource for testing",
                   .mime_type = "text/plain",
                   .read = [](const ResourceRequest& r) {
                     return std::vector{
                         ResourceContents::make_text(r.uri, "This is the content of the static text resource.")};
                   }});
    resources.add({.uri = "test://static-binary",
                   .name = "static-binary",
                   .description = "A static binary resource (a 1x1 PNG image) for testing",
                   .mime_type = "image/png",
                   .read = [](const ResourceRequest& r) {
                     return std::vector{ResourceContents::make_blob(r.uri, base64_decode(kPng))};
                   }});
    resources.add({.uri = "test://watched-resource",
                   .name = "watched-resource",
                   .description = "A resource whose content changes each time the bump_watched tool runs",
                   .mime_type = "text/plain",
                   .read = [](const ResourceRequest& r) {
                     return std::vector{ResourceContents::make_text(
                         r.uri, fmt::format("Watched resource, version {}", g_watched_version.load()))};
                   }});
    resources.add({.uri = "test://error",
                   .name = "error",
                   .description = "A resource whose read always fails",
                   .mime_type = "text/plain",
                   .read = [](const ResourceRequest&) -> std::vector<ResourceContents> {
                     throw ResourceError("test_failure", "This resource intentionally fails to read");
                   }});
    resources.add_template({.uri_template = "test://template/{id}/data",
                            .name = "template-data",
                            .description = "Data for one id: the template's {id} substituted",
                            .mime_type = "application/json",
                            .read =
                                [](const ResourceRequest& r) {
                                  const std::string& id = r.variables.at("id");
                                  return std::vector{ResourceContents::make_text(
                                      r.uri, fmt::format(R"({{"id":{},"templateTest":true,"data":{}}})", jstr(id),
                                                         jstr("Data for ID: " + id)))};
                                },
                            .complete =
                                [](std::string_view, std::string_view typed, const StringMap&) {
                                  return starting_with({"100", "123", "200", "42"}, typed);
                                }});
  }

  static void add_prompts(SetupContext& context) {
    PromptRegistrar& prompts = context.prompt_registrar();
    const std::string p = prompts.prefix();
    auto user_text = [](std::string text) {
      return PromptMessage{.role = "user", .content = ContentBlock::make_text(std::move(text))};
    };
    prompts.add({.name = p + "test_simple_prompt",
                 .description = "A simple prompt without arguments",
                 .get = [user_text](const StringMap&) {
                   return PromptResult{.messages = {user_text("This is a simple prompt for testing.")}};
                 }});
    prompts.add({.name = p + "test_prompt_with_arguments",
                 .description = "A prompt with two required arguments",
                 .arguments = {{.name = "arg1", .description = "First test argument", .required = true},
                               {.name = "arg2", .description = "Second test argument", .required = true}},
                 .get = [user_text](const StringMap& args) {
                   return PromptResult{.messages = {user_text(fmt::format("Prompt with arguments: arg1='{}', arg2='{}'",
                                                                          args.at("arg1"), args.at("arg2")))}};
                 },
                 .complete = [](std::string_view argument, std::string_view typed, const StringMap&) {
                   if (argument == "arg1") return starting_with({"paris", "park", "party", "test", "testing"}, typed);
                   return starting_with({"hello", "world"}, typed);
                 }});
    prompts.add({.name = p + "test_prompt_with_embedded_resource",
                 .description = "A prompt that embeds the resource it is given",
                 .arguments = {{.name = "resourceUri", .description = "URI of the resource to embed", .required = true}},
                 .get = [user_text](const StringMap& args) {
                   return PromptResult{
                       .messages = {PromptMessage{.role = "user",
                                                  .content = ContentBlock::make_resource(ResourceContents::make_text(
                                                      args.at("resourceUri"), "Embedded resource content for testing.",
                                                      "text/plain"))},
                                    user_text("Please process the embedded resource above.")}};
                 }});
    prompts.add({.name = p + "test_prompt_with_image",
                 .description = "A prompt with an image",
                 .get = [user_text](const StringMap&) {
                   return PromptResult{
                       .messages = {PromptMessage{.role = "user",
                                                  .content = ContentBlock::make_image(base64_decode(kPng), "image/png")},
                                    user_text("Please analyze the image above.")}};
                 }});
  }

  static void add_tools(SetupContext& context) {
    ToolRegistrar& tools = context.tool_registrar();
    const std::string p = tools.prefix();
    const std::string no_args = R"({"type":"object","properties":{}})";

    tools.add({.name = p + "echo",
               .title = "Echo",
               .description = "Returns its text unchanged (structured output)",
               .input_schema = R"({"type":"object","properties":{"text":{"type":"string"}},"required":["text"],)"
                               R"("additionalProperties":false})",
               .output_schema = R"({"type":"object","properties":{"text":{"type":"string"}},"required":["text"]})",
               .function = [](const JsonValue& in, ToolContext&) {
                 return parse(fmt::format(R"({{"text":{}}})", jstr(field(in, "text"))));
               },
               .annotations = R"({"readOnlyHint":true,"idempotentHint":true,"openWorldHint":false})"});
    // Changes test://watched-resource and tells its subscribers.
    ResourceRegistrar resources = context.resource_registrar();  // a copy: a registry and an id
    tools.add({.name = p + "bump_watched",
               .description = "Changes test://watched-resource and notifies its subscribers",
               .input_schema = no_args,
               .output_schema = R"({"type":"object","properties":{"version":{"type":"integer"},)"
                                R"("notified":{"type":"integer"}},"required":["version","notified"]})",
               .function = [resources](const JsonValue&, ToolContext&) {
                 const int version = g_watched_version.fetch_add(1) + 1;
                 const std::size_t notified = resources.notify_updated("test://watched-resource");
                 return parse(fmt::format(R"({{"version":{},"notified":{}}})", version, notified));
               },
               .annotations = R"({"readOnlyHint":false,"destructiveHint":false,"idempotentHint":false})"});
    // Tools without arguments that return a fixed MCP CallToolResult.
    auto fixed = [&](const char* name, const char* description, std::string result) {
      (void)parse(result);  // checked once, at setup
      tools.add({.name = p + name,
                 .description = description,
                 .input_schema = no_args,
                 .function = [result](const JsonValue&, ToolContext&) { return parse(result); }});
    };
    fixed("test_simple_text", "Returns a simple text response",
          R"({"content":[{"type":"text","text":"This is a simple text response for testing."}]})");
    fixed("test_image_content", "Returns a 1x1 PNG image",
          fmt::format(R"({{"content":[{{"type":"image","data":"{}","mimeType":"image/png"}}]}})", kPng));
    fixed("test_audio_content", "Returns a short WAV clip",
          fmt::format(R"({{"content":[{{"type":"audio","data":"{}","mimeType":"audio/wav"}}]}})", kWav));
    fixed("test_embedded_resource", "Returns an embedded text resource",
          R"({"content":[{"type":"resource","resource":{"uri":"test://embedded-resource",)"
          R"("mimeType":"text/plain","text":"This is an embedded resource content."}}]})");
    fixed("test_multiple_content_types", "Returns text, an image and a resource",
          fmt::format(R"({{"content":[{{"type":"text","text":"Multiple content types test:"}},)"
                      R"({{"type":"image","data":"{}","mimeType":"image/png"}},)"
                      R"({{"type":"resource","resource":{{"uri":"test://mixed-content-resource",)"
                      R"("mimeType":"application/json","text":"{{\"test\":\"data\",\"value\":123}}"}}}}]}})",
                      kPng));
    tools.add({.name = p + "test_tool_with_logging",
               .description = "Sends three log messages while it runs",
               .input_schema = no_args,
               .function = [](const JsonValue&, ToolContext& ctx) {
                 ctx.log("info", "Tool execution started");
                 std::this_thread::sleep_for(std::chrono::milliseconds(50));
                 ctx.log("info", "Tool processing data");
                 std::this_thread::sleep_for(std::chrono::milliseconds(50));
                 ctx.log("info", "Tool execution completed");
                 return text_result("Tool with logging executed successfully");
               }});
    tools.add({.name = p + "test_tool_with_progress",
               .description = "Reports progress 0, 50 and 100 of 100",
               .input_schema = no_args,
               .function = [](const JsonValue&, ToolContext& ctx) {
                 ctx.progress(0, 100, "");
                 std::this_thread::sleep_for(std::chrono::milliseconds(50));
                 ctx.progress(50, 100, "");
                 std::this_thread::sleep_for(std::chrono::milliseconds(50));
                 ctx.progress(100, 100, "");
                 return text_result("Tool with progress executed successfully");
               }});
    tools.add({.name = p + "test_error_handling",
               .description = "Always fails",
               .input_schema = no_args,
               .function = [](const JsonValue&, ToolContext&) -> Json {
                 throw ToolError("test_error", "This tool intentionally returns an error for testing");
               }});
    tools.add({.name = p + "test_sampling",
               .description = "Asks the client's LLM (sampling/createMessage) and returns its answer",
               .input_schema = R"({"type":"object","properties":{"prompt":{"type":"string"}},"required":["prompt"]})",
               .function = [](const JsonValue& in, ToolContext& ctx) {
                 Json params = parse(fmt::format(
                     R"({{"messages":[{{"role":"user","content":{{"type":"text","text":{}}}}}],"maxTokens":100}})",
                     jstr(field(in, "prompt"))));
                 auto answer = ctx.ask_client("sampling/createMessage", params, std::chrono::seconds(30));
                 if (!answer) throw ToolError(answer.error().code, answer.error().message);
                 std::string text = "(no text)";
                 if (answer->HasMember("content") && (*answer)["content"].IsObject()) {
                   if (auto t = json::get_string((*answer)["content"], "text")) text = std::string(*t);
                 }
                 return text_result("LLM response: " + text);
               }});
    tools.add({.name = p + "test_elicitation",
               .description = "Asks the user (elicitation/create) for a username and an email",
               .input_schema = R"({"type":"object","properties":{"message":{"type":"string"}},"required":["message"]})",
               .function = [](const JsonValue& in, ToolContext& ctx) {
                 return elicit(ctx,
                               fmt::format(R"({{"message":{},"requestedSchema":{{"type":"object","properties":{{)"
                                           R"("username":{{"type":"string","description":"User's response"}},)"
                                           R"("email":{{"type":"string","description":"User's email address"}}}},)"
                                           R"("required":["username","email"]}}}})",
                                           jstr(field(in, "message"))),
                               "User response: ");
               }});
    tools.add({.name = p + "test_elicitation_sep1034_defaults",
               .description = "Elicitation whose schema has defaults for every primitive type (SEP-1034)",
               .input_schema = no_args,
               .function = [](const JsonValue&, ToolContext& ctx) {
                 return elicit(
                     ctx,
                     R"({"message":"Please review and update the form fields with defaults","requestedSchema":{)"
                     R"("type":"object","properties":{)"
                     R"("name":{"type":"string","description":"User name","default":"John Doe"},)"
                     R"("age":{"type":"integer","description":"User age","default":30},)"
                     R"("score":{"type":"number","description":"User score","default":95.5},)"
                     R"("status":{"type":"string","description":"User status","enum":["active","inactive","pending"],)"
                     R"("default":"active"},)"
                     R"("verified":{"type":"boolean","description":"Verification status","default":true}}}})",
                     "Elicitation completed: ");
               }});
    tools.add({.name = p + "test_elicitation_sep1330_enums",
               .description = "Elicitation with the five enum schema variants (SEP-1330)",
               .input_schema = no_args,
               .function = [](const JsonValue&, ToolContext& ctx) {
                 return elicit(
                     ctx,
                     R"({"message":"Please select options from the enum fields","requestedSchema":{"type":"object",)"
                     R"("properties":{)"
                     R"("untitledSingle":{"type":"string","description":"Select one option",)"
                     R"("enum":["option1","option2","option3"]},)"
                     R"("titledSingle":{"type":"string","description":"Select one option with titles","oneOf":[)"
                     R"({"const":"value1","title":"First Option"},{"const":"value2","title":"Second Option"},)"
                     R"({"const":"value3","title":"Third Option"}]},)"
                     R"J("legacyEnum":{"type":"string","description":"Select one option (legacy)",)J"
                     R"("enum":["opt1","opt2","opt3"],"enumNames":["Option One","Option Two","Option Three"]},)"
                     R"("untitledMulti":{"type":"array","description":"Select multiple options","minItems":1,)"
                     R"("maxItems":3,"items":{"type":"string","enum":["option1","option2","option3"]}},)"
                     R"("titledMulti":{"type":"array","description":"Select multiple options with titles",)"
                     R"("minItems":1,"maxItems":3,"items":{"anyOf":[{"const":"value1","title":"First Choice"},)"
                     R"({"const":"value2","title":"Second Choice"},{"const":"value3","title":"Third Choice"}]}}}}})",
                     "Elicitation completed: ");
               }});
    // For the cancellation tests: waits (logging once, so the reply streams)
    // until the call is cancelled, and counts the cancellations it saw.
    tools.add({.name = p + "wait_for_cancel",
               .description = "Waits up to 10 s for its call to be cancelled",
               .input_schema = no_args,
               .function = [](const JsonValue&, ToolContext& ctx) {
                 ctx.log("info", "waiting for cancellation");
                 const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
                 while (!ctx.cancelled() && std::chrono::steady_clock::now() < deadline) {
                   std::this_thread::sleep_for(std::chrono::milliseconds(10));
                 }
                 if (ctx.cancelled()) g_cancellations.fetch_add(1);
                 return text_result(ctx.cancelled() ? "cancelled" : "not cancelled");
               }});
    tools.add({.name = p + "cancellations",
               .description = "How many calls of wait_for_cancel saw their cancellation",
               .input_schema = no_args,
               .output_schema = R"({"type":"object","properties":{"count":{"type":"integer"}},"required":["count"]})",
               .function = [](const JsonValue&, ToolContext&) {
                 return parse(fmt::format(R"({{"count":{}}})", g_cancellations.load()));
               }});
    // A silent slow tool: its reply turns into a stream after the keep-alive interval.
    tools.add({.name = p + "sleep",
               .description = "Sleeps for ms milliseconds, then answers",
               .input_schema = R"({"type":"object","properties":{"ms":{"type":"integer","minimum":0,"maximum":5000}},)"
                               R"("required":["ms"]})",
               .function = [](const JsonValue& in, ToolContext&) {
                 std::this_thread::sleep_for(std::chrono::milliseconds(in["ms"].GetInt()));
                 return text_result("slept");
               }});
    // SSE polling (SEP-1699): the server ends the POST stream before the
    // result; the client resumes with GET + Last-Event-ID to get it.
    tools.add({.name = p + "test_reconnection",
               .description = "Closes the call's SSE stream before answering (ToolContext::close_stream), so the "
                              "client must reconnect with Last-Event-ID to receive the result. With wait_for, "
                              "answers only once release_reconnection is called with that key (at most 20 s)",
               .input_schema = R"({"type":"object","properties":{"wait_for":{"type":"string","maxLength":64}}})",
               .function = [](const JsonValue& in, ToolContext& ctx) {
                 const bool closed = ctx.close_stream();
                 ctx.log("info", closed ? "stream closed; the result follows on reconnection"
                                        : "the stream could not be closed");
                 const std::string key = field(in, "wait_for");
                 if (!key.empty()) {
                   std::unique_lock lock(g_release_mutex);
                   g_released.wait_for(lock, std::chrono::seconds(20), [&] { return g_release_keys.count(key) > 0; });
                   g_release_keys.erase(key);
                 }
                 return text_result(closed ? "Reconnection test completed successfully"
                                           : "Reconnection test completed without closing the stream");
               }});
    tools.add({.name = p + "release_reconnection",
               .description = "Lets the test_reconnection call waiting for this key answer",
               .input_schema = R"({"type":"object","properties":{"key":{"type":"string","maxLength":64}},)"
                               R"("required":["key"]})",
               .function = [](const JsonValue& in, ToolContext&) {
                 {
                   std::lock_guard lock(g_release_mutex);
                   g_release_keys.insert(field(in, "key"));
                 }
                 g_released.notify_all();
                 return text_result("released");
               }});
    tools.add({.name = p + "json_schema_2020_12_tool",
               .description = "Tool with JSON Schema 2020-12 features",
               .input_schema = R"({"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",)"
                               R"("$defs":{"address":{"type":"object","properties":{"street":{"type":"string"},)"
                               R"("city":{"type":"string"}}}},"properties":{"name":{"type":"string"},)"
                               R"("address":{"$ref":"#/$defs/address"}},"additionalProperties":false})",
               .function = [](const JsonValue& in, ToolContext&) {
                 return text_result("Received: " + json::dump(in));
               }});
  }
};

}  // namespace

ORDINAUT_EXTENSION(McpConformance)
