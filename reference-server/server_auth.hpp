// Authentication and browser safety of ordinaut-server: `--auth FILE` (or
// ORDINAUT_AUTH_FILE), `--insecure-no-auth`, `--allowed-host`, and what they
// put into the host's options. The checks themselves are the library's
// (ordinaut::BearerAuthenticator, HostOptions::origin_policy, rate_limits).
//
// Thread safety: configure_auth() runs once at start; reload_keys() may run
// on the signal thread while requests are served.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "ordinaut/auth.hpp"
#include "ordinaut/host.hpp"
#include "ordinaut/logging.hpp"
#include "ordinaut/result.hpp"
#include "server_config.hpp"

namespace ordinaut_server {

class ServerAuth {
 public:
  ServerAuth() = default;
  ~ServerAuth();
  ServerAuth(const ServerAuth&) = delete;
  ServerAuth& operator=(const ServerAuth&) = delete;

  // Reads the auth file (when given) and fills `options`: authenticator,
  // allowed hosts and origins (the file's, plus the bound address), rate
  // limits. Refuses a non-loopback bind without authentication unless
  // --insecure-no-auth. Errors are messages for stderr (exit 2).
  ordinaut::Result<void> configure(const ServerConfig& config, ordinaut::HostOptions& options);

  // After the host started: logs how the server is protected, and with
  // --insecure-no-auth on a public address, a warning now and every hour.
  void announce(const ServerConfig& config, const ordinaut::Logger& log);

  // SIGHUP: re-reads the JWKS file; logs what happened.
  void reload_keys(const ordinaut::Logger& log);

  // GET /.well-known/oauth-protected-resource (RFC 9728): the document, or
  // nullopt when there is no JWT setup (the server then answers 404).
  const std::optional<std::string>& resource_metadata() const { return resource_metadata_; }

  bool enabled() const { return static_cast<bool>(authenticator_); }

 private:
  std::shared_ptr<ordinaut::BearerAuthenticator> authenticator_;
  std::optional<std::string> resource_metadata_;
  std::mutex mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread warner_;
};

// True for an address that only this machine can reach: 127.0.0.0/8, ::1,
// localhost.
bool is_loopback_host(std::string_view host);

}  // namespace ordinaut_server
