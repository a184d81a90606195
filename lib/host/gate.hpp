// Gate: what every request under /ext passes before it is dispatched.
// Browser safety (HostOptions::origin_policy), authentication
// (HostOptions::authenticator) and rate limits (HostOptions::rate_limits).
// Internal to the host.
//
// Owns: the 401/403/429 answers of those checks, their audit records and
// counters. Scope checks stay with the parts that know which scope a path
// needs (dispatcher, admin); the Gate only fills Request::scopes from the
// Principal and removes X-Scopes, so nothing downstream reads a scope the
// client merely asserted.
//
// Thread safety: admit() runs on any number of threads at once.
#pragma once

#include <optional>
#include <string_view>

#include "host/rate_limiter.hpp"
#include "host/services.hpp"
#include "ordinaut/http.hpp"
#include "ordinaut/metrics.hpp"

namespace ordinaut::detail {

class Gate {
 public:
  explicit Gate(HostServices& services);

  // nullopt: go on. `extension_id` is the first path segment after /ext/.
  std::optional<Response> admit(Request& request, std::string_view extension_id);

 private:
  std::optional<Response> refuse_rate(const Request& request, const std::string& key, std::string_view extension_id,
                                      std::string_view who);

  HostServices& services_;
  RateLimiter limiter_;
  Counter* origin_refused_;
  Counter* rate_limited_;
};

// The 403 for a missing scope: "insufficient_scope" with WWW-Authenticate
// when the host authenticates, "forbidden" otherwise; details name the scope.
Response scope_refusal(const HostServices& services, const std::string& needed);

}  // namespace ordinaut::detail
