// ServerAuth (server_auth.hpp).
#include "server_auth.hpp"

#include <arpa/inet.h>

#include <chrono>
#include <cstdlib>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ordinaut/json.hpp"

namespace ordinaut_server {

bool is_loopback_host(std::string_view host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  in_addr v4{};
  const std::string h(host);
  return ::inet_pton(AF_INET, h.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

ServerAuth::~ServerAuth() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (warner_.joinable()) warner_.join();
}

ordinaut::Result<void> ServerAuth::configure(const ServerConfig& config, ordinaut::HostOptions& options) {
  std::string file = config.auth_file;
  if (file.empty()) {
    if (const char* v = std::getenv("ORDINAUT_AUTH_FILE"); v != nullptr) file = v;
  }
  if (!file.empty()) {
    auto auth_config = ordinaut::load_auth_config(file);
    if (!auth_config)
      return ordinaut::make_error(auth_config.error().code, "--auth: " + auth_config.error().describe());
    auto authenticator = ordinaut::BearerAuthenticator::create(*auth_config);
    if (!authenticator)
      return ordinaut::make_error(authenticator.error().code, "--auth: " + authenticator.error().describe());
    authenticator_ = *authenticator;
    options.authenticator = authenticator_;
    for (const auto& h : auth_config->allowed_hosts) options.origin_policy.allowed_hosts.push_back(h);
    for (const auto& o : auth_config->allowed_origins) options.origin_policy.allowed_origins.push_back(o);
    options.rate_limits = auth_config->rate_limits;
    resource_metadata_ = ordinaut::protected_resource_metadata(
        *auth_config, {"ext:status", "ext:admin", "ext:mcp_http:routes", "ext:mcp_http:mcp", "tool:*"});
  } else if (!is_loopback_host(config.host) && !config.insecure_no_auth) {
    return ordinaut::make_error(
        "insecure_bind",
        fmt::format("--host {} is reachable from other machines, and no --auth file is given: anyone who reaches "
                    "the port could manage extensions and call every tool. Give --auth FILE, or "
                    "--insecure-no-auth if something in front of this server authenticates",
                    config.host));
  }
  // The bound address is the server's own name too (a wildcard bind has none).
  if (config.host != "0.0.0.0" && config.host != "::" && !config.host.empty()) {
    options.origin_policy.allowed_hosts.push_back(config.host);
  }
  for (const auto& h : config.allowed_hosts) options.origin_policy.allowed_hosts.push_back(h);
  for (const auto& o : config.allowed_origins) options.origin_policy.allowed_origins.push_back(o);
  return {};
}

void ServerAuth::announce(const ServerConfig& config, const ordinaut::Logger& log) {
  if (authenticator_) {
    const auto& c = authenticator_->config();
    log.info(
        "auth_enabled",
        fmt::format("every request under /ext needs a bearer token: {} static token(s){}", c.tokens.size(),
                    c.jwt ? fmt::format(", JWTs from {} ({} keys)", c.jwt->issuer, authenticator_->key_count()) : ""),
        fmt::format(R"({{"file":"{}","rate_limit_rps":{}}})", ordinaut::json::escape(c.file.string()),
                    c.rate_limits.per_principal_rps));
    return;
  }
  if (is_loopback_host(config.host)) return;
  const std::string message = fmt::format(
      "listening on {} WITHOUT authentication (--insecure-no-auth): anyone who reaches the port can "
      "manage extensions and call every tool",
      config.host);
  log.warn("insecure_no_auth", message);
  warner_ = std::thread([this, log, message] {
    std::unique_lock lock(mutex_);
    while (!stop_cv_.wait_for(lock, std::chrono::hours(1), [this] { return stopping_; })) {
      log.warn("insecure_no_auth", message);
    }
  });
}

void ServerAuth::reload_keys(const ordinaut::Logger& log) {
  if (!authenticator_) {
    log.info("auth_reload", "SIGHUP: no --auth file, nothing to reload");
    return;
  }
  if (auto r = authenticator_->reload_keys(); !r) {
    log.error("auth_reload_failed",
              fmt::format("SIGHUP: the JWKS could not be reloaded, the keys in use stay: {}", r.error().describe()));
    return;
  }
  log.info("auth_reloaded", fmt::format("SIGHUP: JWKS re-read, {} keys", authenticator_->key_count()));
}

}  // namespace ordinaut_server
