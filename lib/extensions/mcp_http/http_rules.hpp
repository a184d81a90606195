// Request rules shared by the MCP endpoint and the REST companion: media types,
// DNS-rebinding protection (Host/Origin) and scope-based access.
//
// Access (when the host requires scopes, i.e. ExtensionHost require_scopes):
//   - the host itself already demands ext:mcp_http:routes for every request;
//   - the MCP endpoint (POST/GET/DELETE /ext/mcp_http/) also needs
//     ext:mcp_http:mcp: it holds sessions and streams, so it is granted apart;
//   - every tool, over MCP and REST alike, needs one of
//       tool:*            every tool
//       tool:{name}       exactly that registry tool, e.g. tool:ext.events_demo.publish
//       tool:{prefix}*    every tool whose registry name starts with {prefix},
//                         e.g. tool:ext.events_demo.* for one extension's namespace
//     A tool the request may not use is left out of listings and answered as
//     unknown/forbidden when called. Without required scopes everything is open.
//   - likewise reading (or subscribing to) a resource needs resource:{uri}
//     (resource:*, resource:{prefix}*), and getting a prompt prompt:{registry
//     name} (prompt:*, prompt:{prefix}*). A resource template is listed (and
//     completed) when some URI it matches could be allowed: an exact
//     resource:{uri} that it matches, or a resource:{prefix}* whose prefix and
//     the template's text before its first '{' agree (one starts with the other).
// Scopes are read per request from X-Scopes (comma separated), the host's
// default resolver; they are not remembered in the session, so a request can
// never use more than it carries itself.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <ordinaut/http.hpp>

#include "config.hpp"

namespace ordinaut::mcp_http {

/// True when the Accept header admits `media_type` ("*/*" and "type/*" count;
/// q=0 excludes).
bool accepts(std::string_view accept_header, std::string_view media_type);

/// True when Content-Type is application/json (parameters such as charset allowed).
bool is_json_content_type(std::string_view content_type);

/// Why a request fails the DNS-rebinding check, or "" when it passes. The
/// host's OriginPolicy (ordinaut::origin_policy_problem, for every request
/// under /ext) already checked Host and Origin; here a missing Host is refused.
std::string rebinding_problem(const Request& request, const Config& config);

inline constexpr std::string_view kMcpScope = "ext:mcp_http:mcp";

class Access {
 public:
  Access() = default;  // everything allowed
  Access(bool enforced, std::vector<std::string> scopes) : enforced_(enforced), scopes_(std::move(scopes)) {}
  static Access of(const Request& request, bool enforced);

  bool enforced() const { return enforced_; }
  bool mcp_allowed() const;
  bool tool_allowed(std::string_view registry_name) const;
  bool resource_allowed(std::string_view uri) const;
  bool template_allowed(std::string_view uri_template) const;
  bool prompt_allowed(std::string_view registry_name) const;

 private:
  bool has(std::string_view scope) const;
  /// A scope "{kind}{name}", "{kind}{prefix}*" or "{kind}*" admits `name`.
  bool matches(std::string_view kind, std::string_view name) const;
  bool enforced_ = false;
  std::vector<std::string> scopes_;
};

}  // namespace ordinaut::mcp_http
