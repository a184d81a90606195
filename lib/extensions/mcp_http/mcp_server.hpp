// McpServer: the Streamable HTTP transport and the MCP methods of mcp_http.
//
// Endpoint "/" of the mount (/ext/mcp_http/ and /ext/mcp_http):
//   POST    JSON-RPC message (or, with protocol 2025-03-26, a batch). Checks, in
//           order: Host/Origin (403), scope ext:mcp_http:mcp when scopes are
//           required (403), Accept has application/json and text/event-stream
//           (406), Content-Type application/json (415), body size (413),
//           MCP-Protocol-Version when sent (400), JSON (400 -32700), envelope
//           (400 -32600), Mcp-Session-Id (400 missing, 404 unknown; initialize
//           creates one). Only notifications/responses → 202. Requests → JSON,
//           or SSE when a tool call streams (see Exchange).
//   GET     the session's standalone SSE stream (406 without Accept
//           text/event-stream, 409 for a second one): list_changed and keep-alives.
//           With Last-Event-ID: resumes the stream that event belongs to (a POST
//           stream, or the standalone one) from the session's EventStore, then
//           live; 400 naming why for a malformed, unknown or evicted id.
//   DELETE  ends the session (200); later requests get 404.
//   OPTIONS CORS preflight for allowed origins; other methods 405.
// Methods: initialize, ping, tools/list (opaque cursor), tools/call,
// logging/setLevel; notifications initialized and cancelled; resources/*,
// prompts/* and completion/complete (resources_prompts.hpp). Anything else is
// -32601.
//
// REST companion (rest.cpp): GET /tools, GET /tools/{name}/schema, POST /invoke,
// GET /resources, GET /resources/templates, POST /read, GET /prompts,
// POST /prompt, POST /complete.
//
// Thread safety: every handler may run concurrently. Owned through a
// shared_ptr: tool calls on worker threads keep it alive.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <ordinaut/http.hpp>
#include <ordinaut/logging.hpp>
#include <ordinaut/prompts.hpp>
#include <ordinaut/resources.hpp>
#include <ordinaut/tools.hpp>

#include "config.hpp"
#include "http_rules.hpp"
#include "protocol.hpp"
#include "resources_prompts.hpp"
#include "session.hpp"
#include "tool_catalog.hpp"
#include "worker_pool.hpp"

namespace ordinaut::mcp_http {

class McpServer : public std::enable_shared_from_this<McpServer> {
 public:
  McpServer(ToolView tools, ResourceView resources, PromptView prompts, Config config, bool scopes_enforced,
            Logger logger);
  ~McpServer();

  /// Starts following registry changes (for list_changed).
  void start();
  /// Ends every session and stream and waits briefly for running calls.
  void stop();

  /// The MCP endpoint, any method.
  Response handle(Request& request);

  // REST companion.
  Response rest_tools(Request& request);
  Response rest_schema(Request& request);
  Response rest_invoke(Request& request);
  Response rest_resources(Request& request);
  Response rest_templates(Request& request);
  Response rest_read(Request& request);
  Response rest_prompts(Request& request);
  Response rest_prompt(Request& request);
  Response rest_complete(Request& request);

  std::size_t session_count() const { return sessions_.size(); }
  std::uint64_t sessions_evicted() const { return sessions_.evicted(); }
  std::size_t worker_threads() const { return workers_.threads(); }
  const Config& config() const { return config_; }
  std::size_t subscription_count() const { return content_->subscription_count(); }

 private:
  Response post(Request& request);
  Response get(Request& request);
  Response del(Request& request);
  Response initialize(const Message& message, const std::string& client_address);
  /// Checks the session header; on failure `error` holds the 400/404 reply.
  std::shared_ptr<Session> session_of(const Request& request, Response& error);

  void on_request(const std::shared_ptr<Session>& session, const Message& message,
                  const std::shared_ptr<Exchange>& exchange, const Access& access);
  void on_notification(Session& session, const Message& message);
  void on_response(Session& session, const Message& message);
  std::string tools_list(const Message& message, const Access& access, int& error_code, std::string& error_text);
  void tools_call(const std::shared_ptr<Session>& session, const Message& message,
                  const std::shared_ptr<Exchange>& exchange, const Access& access);

  /// A REST route of resources_prompts: rebinding check, access, CORS.
  Response rest_content(Request& request, const std::function<Response(const Access&)>& handler);
  /// A JSON-RPC error as an HTTP error reply.
  Response http_error(int status, int code, std::string_view message, std::string_view id = "null") const;
  /// 400 when an MCP-Protocol-Version header names a version not supported;
  /// nullopt when it is absent or supported.
  std::optional<Response> refuse_version(const Request& request) const;
  /// Host/Origin check for every route; nullopt when the request passes.
  std::optional<Response> refuse_rebinding(const Request& request, bool json_rpc) const;
  void add_cors(const Request& request, Response& response) const;

  ToolView tools_;
  const Config config_;
  const bool scopes_enforced_;
  Logger logger_;
  SessionStore sessions_;
  WorkerPool workers_;
  ToolCatalog catalog_;
  std::shared_ptr<ResourcesPrompts> content_;
  std::uint64_t listener_ = 0;
  bool listening_ = false;
};

}  // namespace ordinaut::mcp_http
