// Resources, resource templates, prompts and completion for mcp_http: the MCP
// methods and their REST companion, served from the host's registries through
// the read-only views every extension gets (SetupContext::resources() and
// prompts()).
//
// MCP methods:
//   resources/list, resources/templates/list, prompts/list
//       opaque params.cursor / nextCursor, Config::page_size entries a page
//   resources/read {uri}            → {contents: [{uri, mimeType?, text | blob}]}
//   resources/subscribe {uri}       → {}; then notifications/resources/updated
//                                     {uri} on the session's standalone GET
//                                     stream after every notify_updated(uri)
//   resources/unsubscribe {uri}     → {} (also when not subscribed)
//   prompts/get {name, arguments?}  → GetPromptResult
//   completion/complete {ref: {type: "ref/prompt", name} | {type:
//       "ref/resource", uri}, argument: {name, value}, context?: {arguments}}
//                                   → {completion: {values, total, hasMore}}
// Subscriptions belong to the session: they end with it (DELETE, expiry,
// eviction, shutdown), and at most kMaxSubscriptions are held per session.
// When either registry's lists change, every session's GET stream gets
// notifications/resources/list_changed or notifications/prompts/list_changed.
//
// Errors: resource_not_found → -32002 with data {uri}; an unknown prompt,
// invalid_arguments, invalid_params and malformed params → -32602; a missing
// scope → -32602 with data.required_scope (as for tools); anything else →
// -32603 with the registry's message and data {code}.
//
// Names: prompts follow the tools' rule (tool_catalog.hpp): registry names,
// without "ext.{id}." for the extensions in ORDINAUT_MCP_SHORT_NAMES when
// unambiguous; the registry name is always accepted too, and an unlisted
// "ext.{id}.*" name still reaches the registry, which loads a lazy extension.
//
// Scopes (http_rules.hpp): resource:{uri} to read or subscribe, prompt:{name}
// to get or complete a prompt; listings leave out what the request may not use.
//
// Thread safety: every member may be called concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <ordinaut/http.hpp>
#include <ordinaut/prompts.hpp>
#include <ordinaut/resources.hpp>

#include "config.hpp"
#include "http_rules.hpp"
#include "session.hpp"

namespace ordinaut::mcp_http {

/// MCP's "Resource not found" error code.
inline constexpr int kResourceNotFound = -32002;

/// The answer to one MCP request: a result (code 0) or a JSON-RPC error.
struct RpcOutcome {
  int code = 0;
  std::string message;
  std::string data_json;    ///< error data, or ""
  std::string result_json;  ///< when code == 0
};

/// Why a request fails, for MCP (rpc_code) and REST (http_status, error).
struct Failure {
  int rpc_code = -32602;
  int http_status = 400;
  std::string error = "bad_request";
  std::string message;
  std::string data_json;  ///< JSON object, or ""
};

struct CatalogPrompt {
  std::string mcp_name;
  std::string registry_name;
  std::string json;  ///< the MCP Prompt object, under mcp_name
  PromptInfo info;
};

struct PromptSnapshot {
  std::uint64_t generation = 0;
  std::vector<CatalogPrompt> prompts;  ///< sorted by mcp_name
  std::unordered_map<std::string, std::size_t> by_mcp_name;
  std::unordered_map<std::string, std::size_t> by_registry_name;
  /// By MCP name, then by registry name; null when neither is listed.
  const CatalogPrompt* find(std::string_view name) const;
};

class ResourcesPrompts : public std::enable_shared_from_this<ResourcesPrompts> {
 public:
  static constexpr std::size_t kMaxSubscriptions = 1000;  ///< per session

  ResourcesPrompts(ResourceView resources, PromptView prompts, const Config& config);
  ~ResourcesPrompts();

  /// Follows both registries: `broadcast` gets the list_changed notification
  /// (message text) to hand to every session.
  void start(std::function<void(const std::string& message)> broadcast);
  /// Stops following and drops every subscription.
  void stop();

  /// Answers `method` when it is one of the methods above; nullopt otherwise.
  std::optional<RpcOutcome> handle(std::string_view method, const JsonValue* params,
                                   const std::shared_ptr<Session>& session, const Access& access);

  /// Subscriptions held by all sessions (for tests and health).
  std::size_t subscription_count() const;

  // REST companion (see rest.cpp for the routes).
  Response rest_resources(const Access& access) const;
  Response rest_templates(const Access& access) const;
  Response rest_read(const JsonValue& body, const Access& access) const;
  Response rest_prompts(const Access& access) const;
  Response rest_prompt(const JsonValue& body, const Access& access) const;
  Response rest_complete(const JsonValue& body, const Access& access) const;

 private:
  std::shared_ptr<const PromptSnapshot> prompt_snapshot() const;
  /// True when `uri` is a static resource or matches a template.
  bool resource_exists(std::string_view uri) const;

  RpcOutcome list_resources(const JsonValue* params, const Access& access) const;
  RpcOutcome list_templates(const JsonValue* params, const Access& access) const;
  RpcOutcome list_prompts(const JsonValue* params, const Access& access) const;
  RpcOutcome read(const JsonValue* params, const Access& access) const;
  RpcOutcome subscribe(const JsonValue* params, const std::shared_ptr<Session>& session, const Access& access);
  RpcOutcome unsubscribe(const JsonValue* params, const std::shared_ptr<Session>& session);
  RpcOutcome get_prompt(const JsonValue* params, const Access& access) const;
  RpcOutcome complete(const JsonValue* params, const Access& access) const;
  // Shared by MCP and REST: the result JSON in `result`, or the failure.
  std::optional<Failure> do_get_prompt(const JsonValue* name, const JsonValue* arguments, const Access& access,
                                       std::string& registry_name, std::string& result) const;
  std::optional<Failure> do_complete(const JsonValue* params, const Access& access, std::string& result) const;
  /// The registry name of a prompt a client names; a Failure for an unknown
  /// one (unlisted "ext.{id}.*" names pass: the registry loads lazy extensions).
  std::optional<Failure> resolve_prompt(const std::string& requested, std::string& registry_name) const;
  void drop_session(const std::string& session_id);

  ResourceView resources_;
  PromptView prompts_;
  const Config& config_;
  std::uint64_t resource_listener_ = 0;
  std::uint64_t prompt_listener_ = 0;
  bool listening_ = false;

  mutable std::mutex mutex_;
  mutable std::shared_ptr<const PromptSnapshot> prompt_cache_;
  // session id → uri → the registry's subscription id
  std::unordered_map<std::string, std::map<std::string, std::uint64_t, std::less<>>> subscriptions_;
};

}  // namespace ordinaut::mcp_http
