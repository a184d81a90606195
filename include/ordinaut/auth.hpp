// Authentication: who a request comes from, and the scopes it has proved.
//
// An Authenticator turns a request's credentials into a Principal (a name and
// the scopes it holds) or refuses them. The host calls the one in
// HostOptions::authenticator for every request under /ext; when one is set,
// scopes come only from it (the X-Scopes header is ignored and removed before
// extensions see the request). The reference server's `--auth FILE` makes a
// BearerAuthenticator; an embedding program may implement Authenticator with
// its own verifier (a session cookie, mTLS, an introspection call) instead.
//
// BearerAuthenticator checks `Authorization: Bearer <token>` against
//   - static tokens, stored only as the SHA-256 of the token and compared in
//     constant time, each with its scopes;
//   - JWTs signed with RS256, ES256 or EdDSA (Ed25519) by a key of a JWKS
//     file, chosen by `kid`, with `exp`, `nbf`, `iss` and `aud` checked (with
//     leeway) and scopes from the `scope` claim (space-separated) or `scp`
//     (array). Signatures are verified by OpenSSL.
//
// Thread safety: authenticate() may be called from any number of threads;
// BearerAuthenticator::reload_keys() may run concurrently with it.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ordinaut/http.hpp"
#include "ordinaut/result.hpp"
#include "ordinaut/version.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

/// Who made a request, as an Authenticator proved it.
struct Principal {
  std::string name;                 ///< a static token's name, or the JWT's `sub`
  std::string kind;                 ///< "token", "jwt", or what a custom authenticator says
  std::vector<std::string> scopes;  ///< may hold wildcards: "ext:*:routes"
};

/// Interface of the host's authentication (HostOptions::authenticator).
/// Errors: code "missing_token" or "invalid_token" (answered 401 with
/// WWW-Authenticate), "invalid_request" (400, e.g. two Authorization
/// headers). Messages are shown to the client: never put a token in them.
class Authenticator {
 public:
  virtual ~Authenticator() = default;
  /// The Principal whose credentials `request` carries, or the error to answer.
  /// Called concurrently from the server's threads.
  virtual Result<Principal> authenticate(const Request& request) const = 0;
};

/// True when `granted` allows `needed`. A granted scope may hold `*`, which
/// matches any run of characters other than ':' ("ext:*:routes" allows
/// "ext:shop:routes"; "tool:*" allows "tool:ext.shop.order").
bool scope_allows(const std::vector<std::string>& granted, std::string_view needed);

/// One static token of an auth file.
struct StaticToken {
  std::string name;                 ///< who holds it: Principal::name, and in audit records
  std::string sha256_hex;           ///< lower-case hex SHA-256 of the token
  std::vector<std::string> scopes;  ///< what it may do; may hold wildcards
};

/// The `jwt` section of an auth file.
struct JwtOptions {
  std::string issuer;               ///< required `iss`
  std::string audience;             ///< required in `aud` (a string or an array)
  std::filesystem::path jwks_file;  ///< relative paths are relative to the auth file
  std::vector<std::string> algorithms{"RS256", "ES256", "EdDSA"};  ///< accepted `alg` values
  std::string scope_claim = "scope";  ///< space-separated string; `scp` (array) is read too
  std::chrono::seconds leeway{60};    ///< clock skew allowed for `exp` and `nbf`
};

/// Token bucket limits (`rate_limits`); zero rate means no limit.
struct RateLimitOptions {
  double per_principal_rps = 0;  ///< refill rate per principal (or client address)
  double burst = 0;              ///< bucket size; defaults to 2 × rate when zero
  /// Limits per extension id, applied on top of the per-principal one.
  std::vector<std::pair<std::string, std::pair<double, double>>> per_extension;  ///< id → (rps, burst)
};

/// An auth file (`--auth FILE`, ORDINAUT_AUTH_FILE), as JSON:
/// {"tokens": [{"name", "sha256", "scopes"}], "jwt": {...}, "allowed_origins": [...],
///  "allowed_hosts": [...], "rate_limits": {"per_principal_rps", "burst", "per_extension"}}
struct AuthConfig {
  std::filesystem::path file;                ///< the file read (names it in messages)
  std::vector<StaticToken> tokens;           ///< `tokens`
  std::optional<JwtOptions> jwt;             ///< `jwt`; none: JWTs are refused
  std::vector<std::string> allowed_origins;  ///< added to HostOptions::origin_policy
  std::vector<std::string> allowed_hosts;    ///< added to HostOptions::origin_policy
  RateLimitOptions rate_limits;              ///< `rate_limits`; off by default
};

/// Reads and validates an auth file. Errors name the file and the JSON
/// pointer: "invalid_auth_file" (shape), "unreadable_auth_file".
Result<AuthConfig> load_auth_config(const std::filesystem::path& file);
/// The same, from text (`file` only names it in messages and resolves the
/// JWKS path).
Result<AuthConfig> parse_auth_config(std::string_view text, const std::filesystem::path& file);

/// The OAuth 2.0 Protected Resource Metadata (RFC 9728) of a JWT setup, for
/// GET /.well-known/oauth-protected-resource: the resource identifier (the
/// configured audience, which the `aud` check uses), the issuer as its
/// authorization server, bearer tokens in the header, and `scopes` as
/// scopes_supported. nullopt without a `jwt` section.
std::optional<std::string> protected_resource_metadata(const AuthConfig& config,
                                                       const std::vector<std::string>& scopes = {});

/// Lower-case hex SHA-256 of `text` (what an auth file stores for a token).
std::string sha256_hex(std::string_view text);

/// The Authenticator of an AuthConfig: static tokens and JWTs.
class BearerAuthenticator final : public Authenticator {
 public:
  /// Loads the JWKS file when the config has a `jwt` section. Errors:
  /// "invalid_jwks" naming the file and the key.
  static Result<std::shared_ptr<BearerAuthenticator>> create(AuthConfig config);
  ~BearerAuthenticator() override;

  /// Checks `Authorization: Bearer <token>`: a static token, else a JWT.
  Result<Principal> authenticate(const Request& request) const override;
  /// Verifies a bare token (what follows "Bearer ").
  Result<Principal> verify_token(std::string_view token) const;

  /// Re-reads the JWKS file (the server calls it on SIGHUP). On error the
  /// keys in use stay and the error is returned.
  Result<void> reload_keys();
  /// Number of keys loaded from the JWKS file.
  std::size_t key_count() const;

  /// The configuration it was created with.
  const AuthConfig& config() const;

  /// Seconds since the epoch; tests replace it to check expiry.
  void set_clock_for_testing(std::function<std::int64_t()> now);

  struct Impl;

 private:
  explicit BearerAuthenticator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
