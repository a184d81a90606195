// Gate (gate.hpp).
#include "host/gate.hpp"

#include <cmath>

#include <fmt/format.h>

#include "ordinaut/auth.hpp"
#include "ordinaut/json.hpp"

namespace ordinaut::detail {

namespace {

std::string json_string(std::string_view s) { return '"' + json::escape(s.substr(0, 200)) + '"'; }

// RFC 9728: where an MCP client finds the authorization server. Only a JWT
// setup has one.
std::string resource_metadata(const Request& request, const Authenticator& authenticator) {
  auto* bearer = dynamic_cast<const BearerAuthenticator*>(&authenticator);
  const std::string_view host = request.header("Host");
  if (bearer == nullptr || !bearer->config().jwt || host.empty()) return {};
  const bool https = request.header("X-Forwarded-Proto") == "https";
  return fmt::format(", resource_metadata=\"{}://{}/.well-known/oauth-protected-resource\"", https ? "https" : "http",
                     std::string(host.substr(0, 200)));
}

}  // namespace

Gate::Gate(HostServices& services)
    : services_(services),
      limiter_(services.options.rate_limits),
      origin_refused_(&services.metrics.counter("ordinaut_http_origin_refused_total",
                                                "Requests refused for their Host or Origin header")),
      rate_limited_(
          &services.metrics.counter("ordinaut_http_rate_limited_total", "Requests refused with 429 by a rate limit")) {}

std::optional<Response> Gate::admit(Request& request, std::string_view extension_id) {
  // Origin is checked on every method, not only state-changing ones: a page
  // of another origin must not read answers either (mcp_http sends CORS
  // headers for the origins that pass).
  if (std::string problem = origin_policy_problem(request, services_.options.origin_policy, true); !problem.empty()) {
    origin_refused_->inc();
    services_.logger.audit(
        "origin_refused", problem,
        fmt::format(R"({{"host":{},"origin":{},"method":{},"path":{},"remote":{}}})",
                    json_string(request.header("Host")), json_string(request.header("Origin")),
                    json_string(request.method), json_string(request.path), json_string(request.remote_addr)));
    return Response::error(403, "forbidden", problem, R"({"reason":"origin_policy"})");
  }
  const Authenticator* authenticator = services_.options.authenticator.get();
  if (authenticator == nullptr) {
    if (!limiter_.enabled()) return std::nullopt;
    return refuse_rate(request, "address:" + request.remote_addr, extension_id, "client address");
  }
  auto principal = authenticator->authenticate(request);
  if (!principal) {
    const Error& e = principal.error();
    services_.metrics
        .counter("ordinaut_auth_failures_total", "Requests refused for their credentials",
                 {{"reason", e.code == "missing_token" || e.code == "invalid_request" ? e.code : "invalid_token"}})
        .inc();
    services_.logger.audit(
        "auth_failed", e.message,
        fmt::format(R"({{"reason":{},"method":{},"path":{},"remote":{}}})", json_string(e.code),
                    json_string(request.method), json_string(request.path), json_string(request.remote_addr)));
    // Failed attempts spend the client address's bucket: guessing is slowed.
    if (limiter_.enabled()) {
      if (auto limited = refuse_rate(request, "address:" + request.remote_addr, extension_id, "client address")) {
        return limited;
      }
    }
    const bool bad_request = e.code == "invalid_request";
    Response r = Response::error(bad_request ? 400 : 401, bad_request ? "bad_request" : "unauthorized", e.message,
                                 fmt::format(R"({{"reason":{}}})", json_string(e.code)));
    std::string challenge = "Bearer realm=\"ordinaut\"";
    if (e.code != "missing_token")
      challenge += bad_request ? ", error=\"invalid_request\"" : ", error=\"invalid_token\"";
    challenge += resource_metadata(request, *authenticator);
    r.headers.set("WWW-Authenticate", std::move(challenge));
    return r;
  }
  request.headers.erase("X-Scopes");
  request.scopes = std::move(principal->scopes);
  if (!limiter_.enabled()) return std::nullopt;
  return refuse_rate(request, "principal:" + principal->name, extension_id, "principal '" + principal->name + "'");
}

std::optional<Response> Gate::refuse_rate(const Request& request, const std::string& key, std::string_view extension_id,
                                          std::string_view who) {
  RateLimiter::Decision d = limiter_.take(key, extension_id);
  if (d.allowed) return std::nullopt;
  rate_limited_->inc();
  const auto retry = static_cast<long>(std::max(1.0, std::ceil(d.retry_after_s)));
  services_.logger.audit(
      "rate_limited",
      fmt::format("{} exceeded its {} rate limit on {} {}", who, d.scope, request.method, request.path.substr(0, 200)),
      fmt::format(R"({{"scope":"{}","remote":{},"retry_after_s":{}}})", d.scope, json_string(request.remote_addr),
                  retry));
  Response r = Response::error(
      429, "rate_limit_exceeded",
      fmt::format("too many requests from {} ({} limit: {} at once); retry in {} s", who, d.scope, d.limit, retry),
      fmt::format(R"({{"scope":"{}","limit":{},"retry_after_s":{}}})", d.scope, d.limit, retry));
  r.headers.set("Retry-After", std::to_string(retry));
  r.headers.set("RateLimit-Limit", fmt::format("{}", d.limit));
  r.headers.set("RateLimit-Remaining", fmt::format("{}", d.remaining));
  r.headers.set("RateLimit-Reset", std::to_string(static_cast<long>(std::ceil(d.reset_s))));
  return r;
}

Response scope_refusal(const HostServices& services, const std::string& needed) {
  const std::string details = fmt::format(R"({{"required_scope":"{}"}})", json::escape(needed));
  if (!services.options.authenticator) {
    return Response::error(403, "forbidden", fmt::format("missing scope {}", needed), details);
  }
  Response r = Response::error(403, "insufficient_scope", fmt::format("missing scope {}", needed), details);
  r.headers.set("WWW-Authenticate",
                fmt::format("Bearer realm=\"ordinaut\", error=\"insufficient_scope\", scope=\"{}\"", needed));
  return r;
}

}  // namespace ordinaut::detail
