// mcp_http: a Model Context Protocol server (Streamable HTTP, protocol
// versions 2025-11-25, 2025-06-18 and 2025-03-26) at /ext/mcp_http/, exposing
// every tool, resource and prompt of the host's registries — any extension's
// and the host's — to MCP clients, plus a small REST companion. See
// mcp_server.hpp for the transport, http_rules.hpp for access (scopes),
// tool_catalog.hpp for names and results, resources_prompts.hpp for resources,
// prompts and completion,
// config.hpp for settings, README.md for an overview.
#include <ordinaut/extension.hpp>

#include "mcp_server.hpp"

namespace {

using namespace ordinaut;

constexpr const char* kInvokeSchema = R"({
  "type": "object",
  "required": ["tool"],
  "properties": {
    "tool": {"type": "string", "minLength": 1},
    "parameters": {"type": "object"}
  },
  "additionalProperties": false
})";

constexpr const char* kReadSchema = R"({
  "type": "object",
  "required": ["uri"],
  "properties": {"uri": {"type": "string", "minLength": 1}},
  "additionalProperties": false
})";

constexpr const char* kPromptSchema = R"({
  "type": "object",
  "required": ["prompt"],
  "properties": {
    "prompt": {"type": "string", "minLength": 1},
    "arguments": {"type": "object", "additionalProperties": {"type": "string"}}
  },
  "additionalProperties": false
})";

constexpr const char* kCompleteSchema = R"({
  "type": "object",
  "required": ["ref", "argument"],
  "properties": {
    "ref": {
      "type": "object",
      "required": ["type"],
      "properties": {
        "type": {"enum": ["ref/prompt", "ref/resource"]},
        "name": {"type": "string"},
        "uri": {"type": "string"}
      }
    },
    "argument": {
      "type": "object",
      "required": ["name", "value"],
      "properties": {"name": {"type": "string"}, "value": {"type": "string"}}
    },
    "context": {
      "type": "object",
      "properties": {"arguments": {"type": "object", "additionalProperties": {"type": "string"}}}
    }
  },
  "additionalProperties": false
})";

class McpHttp final : public Extension {
 public:
  ExtensionInfo info() const override {
    return {"mcp_http", "MCP over HTTP", "0.1.0",
            "Model Context Protocol (Streamable HTTP) server exposing every tool, resource and prompt of the host"};
  }
  CapabilitySet requested_capabilities() const override { return {Capability::ROUTES}; }

  std::optional<Router> setup(SetupContext& context) override {
    auto config = mcp_http::Config::from_environment();
    // The host's scope policy is fixed once it started; its status says which.
    Json status = context.host_status();
    const bool scopes = status.IsObject() && status.HasMember("require_scopes") && status["require_scopes"].IsBool() &&
                        status["require_scopes"].GetBool();
    server_ = std::make_shared<mcp_http::McpServer>(context.tools(), context.resources(), context.prompts(),
                                                    std::move(config), scopes, context.logger());
    server_->start();

    Router router;
    auto s = server_;
    router.add("*", "/", [s](Request& r) { return s->handle(r); },
               {.summary = "MCP Streamable HTTP endpoint: POST messages, GET the session stream, DELETE the session"});
    // The same endpoint under the name clients and the inspector expect (a URL
    // ending in /mcp): one server, so sessions work across both paths.
    router.add("*", "/mcp", [s](Request& r) { return s->handle(r); },
               {.summary = "The MCP endpoint again, at the conventional /mcp path (same server, same sessions)"});
    router.get("/tools", [s](Request& r) { return s->rest_tools(r); },
               {.summary = "Every tool the caller may use, with input and output schemas"});
    router.get("/tools/{name}/schema", [s](Request& r) { return s->rest_schema(r); },
               {.summary = "One tool's input and output schema"});
    router.post("/invoke", [s](Request& r) { return s->rest_invoke(r); },
                {.summary = "Call a tool: {\"tool\": name, \"parameters\": {...}}", .request_schema = kInvokeSchema});
    router.get("/resources", [s](Request& r) { return s->rest_resources(r); },
               {.summary = "Every static resource the caller may read"});
    router.get("/resources/templates", [s](Request& r) { return s->rest_templates(r); },
               {.summary = "Every resource template (RFC 6570 URI template) the caller may use"});
    router.post("/read", [s](Request& r) { return s->rest_read(r); },
                {.summary = "Read a resource: {\"uri\": uri} → {\"uri\", \"contents\"}", .request_schema = kReadSchema});
    router.get("/prompts", [s](Request& r) { return s->rest_prompts(r); },
               {.summary = "Every prompt the caller may get, with its arguments"});
    router.post("/prompt", [s](Request& r) { return s->rest_prompt(r); },
                {.summary = "Get a prompt: {\"prompt\": name, \"arguments\": {...}} → {\"prompt\", \"result\"}",
                 .request_schema = kPromptSchema});
    router.post("/complete", [s](Request& r) { return s->rest_complete(r); },
                {.summary = "Complete a prompt argument or template variable (MCP completion/complete params)",
                 .request_schema = kCompleteSchema});
    return router;
  }

  void on_shutdown() override {
    if (server_) server_->stop();
  }

  Json health_checks() const override {
    Json doc = json::object();
    if (!server_) return doc;
    auto& a = doc.GetAllocator();
    JsonValue sessions(rapidjson::kObjectType);
    const auto open = static_cast<std::uint64_t>(server_->session_count());
    const auto limit = static_cast<std::uint64_t>(server_->config().max_sessions);
    sessions.AddMember("status", JsonValue(open < limit ? "ok" : "full", a), a);
    sessions.AddMember("open", open, a);
    sessions.AddMember("limit", limit, a);
    sessions.AddMember("limit_per_client", static_cast<std::uint64_t>(server_->config().max_sessions_per_client), a);
    sessions.AddMember("evicted", server_->sessions_evicted(), a);
    doc.AddMember("sessions", sessions, a);
    JsonValue workers(rapidjson::kObjectType);
    workers.AddMember("status", "ok", a);
    workers.AddMember("threads", static_cast<std::uint64_t>(server_->worker_threads()), a);
    workers.AddMember("limit", static_cast<std::uint64_t>(server_->config().max_workers), a);
    doc.AddMember("workers", workers, a);
    return doc;
  }

 private:
  std::shared_ptr<mcp_http::McpServer> server_;
};

}  // namespace

ORDINAUT_EXTENSION(McpHttp)
