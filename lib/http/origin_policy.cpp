// OriginPolicy checks (include/ordinaut/http.hpp).
#include <algorithm>
#include <string>

#include <fmt/format.h>

#include "core/strings.hpp"
#include "ordinaut/http.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

namespace {

// "host:port", "[v6]:port" or "host" → the host ("[::1]" keeps brackets).
std::string_view host_name(std::string_view authority) {
  authority = detail::trim(authority);
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    return close == std::string_view::npos ? std::string_view{} : authority.substr(0, close + 1);
  }
  return authority.substr(0, authority.find(':'));
}

// Case-insensitive throughout, and without allocating: this runs for every
// request under /ext.
bool host_allowed(std::string_view host, const OriginPolicy& policy) {
  using detail::iequals;
  if (iequals(host, "localhost") || host == "127.0.0.1" || host == "[::1]") return true;
  for (const auto& h : policy.allowed_hosts) {
    if (h == "*" || iequals(h, host)) return true;
  }
  return false;
}

// True when `origin` is http:// or https:// followed by `host_header`.
bool is_own_origin(std::string_view origin, std::string_view host_header) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (origin.size() == scheme.size() + host_header.size() &&
        detail::iequals(origin.substr(0, scheme.size()), scheme) &&
        detail::iequals(origin.substr(scheme.size()), host_header)) {
      return true;
    }
  }
  return false;
}

bool state_changing(std::string_view method) {
  return method == "POST" || method == "PUT" || method == "PATCH" || method == "DELETE";
}

}  // namespace

std::string origin_policy_problem(const Request& request, const OriginPolicy& policy, bool origin_on_every_method) {
  const std::string_view host_header = detail::trim(request.header("Host"));
  if (!host_header.empty() && !host_allowed(host_name(host_header), policy)) {
    return fmt::format(
        "Host \"{}\" is not accepted (DNS rebinding protection; accepted: localhost, 127.0.0.1, "
        "[::1]{})",
        std::string(host_header.substr(0, 200)), policy.allowed_hosts.empty() ? "" : " and the allowed hosts");
  }
  if (!request.headers.has("Origin") || (!origin_on_every_method && !state_changing(request.method))) return {};
  const std::string_view origin = detail::trim(request.header("Origin"));
  if (!host_header.empty() && is_own_origin(origin, host_header)) return {};
  for (const auto& o : policy.allowed_origins) {
    if (o == "*" || detail::iequals(o, origin)) return {};
  }
  return fmt::format(
      "Origin \"{}\" may not send {} requests here (cross-site request protection); allowed: this "
      "server's own origin{}",
      std::string(request.header("Origin").substr(0, 200)), request.method,
      policy.allowed_origins.empty() ? "" : " and the allowed origins");
}

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
