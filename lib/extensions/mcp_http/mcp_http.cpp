// mcp_http: a Model Context Protocol server (Streamable HTTP, protocol
// versions 2025-11-25, 2025-06-18 and 2025-03-26) at /ext/mcp_http/, exposing
// every tool of the host's registry — any extension's and the host's — to MCP
// clients, plus a small REST companion. See mcp_server.hpp for the transport,
// http_rules.hpp for access (scopes), tool_catalog.hpp for names and results,
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

class McpHttp final : public Extension {
 public:
  ExtensionInfo info() const override {
    return {"mcp_http", "MCP over HTTP", "0.1.0",
            "Model Context Protocol (Streamable HTTP) server exposing every tool in the registry"};
  }
  CapabilitySet requested_capabilities() const override { return {Capability::ROUTES}; }

  std::optional<Router> setup(SetupContext& context) override {
    auto config = mcp_http::Config::from_environment();
    // The host's scope policy is fixed once it started; its status says which.
    Json status = context.host_status();
    const bool scopes = status.IsObject() && status.HasMember("require_scopes") && status["require_scopes"].IsBool() &&
                        status["require_scopes"].GetBool();
    server_ = std::make_shared<mcp_http::McpServer>(context.tools(), std::move(config), scopes, context.logger());
    server_->start();

    Router router;
    auto s = server_;
    router.add("*", "/", [s](Request& r) { return s->handle(r); },
               {.summary = "MCP Streamable HTTP endpoint: POST messages, GET the session stream, DELETE the session"});
    router.get("/tools", [s](Request& r) { return s->rest_tools(r); },
               {.summary = "Every tool the caller may use, with input and output schemas"});
    router.get("/tools/{name}/schema", [s](Request& r) { return s->rest_schema(r); },
               {.summary = "One tool's input and output schema"});
    router.post("/invoke", [s](Request& r) { return s->rest_invoke(r); },
                {.summary = "Call a tool: {\"tool\": name, \"parameters\": {...}}", .request_schema = kInvokeSchema});
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
