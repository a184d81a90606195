// BearerAuthenticator: static tokens and JWTs (include/ordinaut/auth.hpp).
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <list>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth/jwks.hpp"
#include "core/strings.hpp"
#include "ordinaut/auth.hpp"
#include "ordinaut/json.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

namespace {

constexpr std::size_t kDigestSize = 32;
using Digest = std::array<unsigned char, kDigestSize>;
// Verified JWTs kept (by the SHA-256 of the token) so that a client sending
// the same token again costs a hash and a lookup, not a signature check.
constexpr std::size_t kCacheCapacity = 4096;

Digest digest_of(std::string_view text) {
  Digest d{};
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), d.data(), &length, EVP_sha256(), nullptr);
  return d;
}

std::optional<Digest> digest_from_hex(std::string_view hex) {
  if (hex.size() != kDigestSize * 2) return std::nullopt;
  Digest d{};
  for (std::size_t i = 0; i < kDigestSize; ++i) {
    const int hi = detail::hex_value(hex[2 * i]), lo = detail::hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    d[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return d;
}

struct DigestHash {
  std::size_t operator()(const Digest& d) const noexcept {
    std::size_t h;
    std::memcpy(&h, d.data(), sizeof h);
    return h;
  }
};

Error invalid_token(std::string message) { return make_error("invalid_token", std::move(message)); }

std::int64_t system_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

struct BearerAuthenticator::Impl {
  AuthConfig config;
  std::vector<std::pair<Digest, std::size_t>> tokens;  // digest → index in config.tokens

  mutable std::shared_mutex keys_mutex;
  std::shared_ptr<const detail::KeySet> keys;

  std::function<std::int64_t()> now = system_seconds;

  struct Cached {
    Principal principal;
    std::int64_t expires;  // exp + leeway
    std::list<Digest>::iterator age;
  };
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<Digest, Cached, DigestHash> cache;
  mutable std::list<Digest> ages;                // most recently verified first
  std::atomic<std::uint64_t> key_generation{0};  // bumped by reload: clears the cache

  std::shared_ptr<const detail::KeySet> key_set() const {
    std::shared_lock lock(keys_mutex);
    return keys;
  }

  Result<Principal> verify_jwt(std::string_view token, const Digest& digest) const;
  void remember(const Digest& digest, const Principal& p, std::int64_t expires) const {
    std::lock_guard lock(cache_mutex);
    if (cache.count(digest) != 0) return;
    if (cache.size() >= kCacheCapacity) {
      cache.erase(ages.back());
      ages.pop_back();
    }
    ages.push_front(digest);
    cache.emplace(digest, Cached{p, expires, ages.begin()});
  }
  std::optional<Principal> recall(const Digest& digest) const {
    std::lock_guard lock(cache_mutex);
    auto it = cache.find(digest);
    if (it == cache.end()) return std::nullopt;
    if (now() > it->second.expires) {
      ages.erase(it->second.age);
      cache.erase(it);
      return std::nullopt;
    }
    return it->second.principal;
  }
  void forget_all() const {
    std::lock_guard lock(cache_mutex);
    cache.clear();
    ages.clear();
  }
};

Result<Principal> BearerAuthenticator::Impl::verify_jwt(std::string_view token, const Digest& digest) const {
  if (!config.jwt) return invalid_token("the token is not known");
  const JwtOptions& o = *config.jwt;
  const std::size_t dot1 = token.find('.');
  const std::size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return invalid_token("the token is not known and is not a JWT (three base64url parts)");
  }
  auto header_text = detail::base64url_decode(token.substr(0, dot1));
  auto claims_text = detail::base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  auto signature = detail::base64url_decode(token.substr(dot2 + 1));
  if (!header_text || !claims_text || !signature) return invalid_token("the JWT is not base64url");
  auto header = json::parse(*header_text);
  if (!header || !header->IsObject()) return invalid_token("the JWT header is not a JSON object");
  auto alg = json::get_string(*header, "alg");
  if (!alg) return invalid_token("the JWT header has no \"alg\"");
  if (std::find(o.algorithms.begin(), o.algorithms.end(), *alg) == o.algorithms.end()) {
    return invalid_token(fmt::format("JWT algorithm '{}' is not accepted (accepted: {})",
                                     json::escape(alg->substr(0, 20)), fmt::join(o.algorithms, ", ")));
  }
  const std::string_view kid = json::get_string(*header, "kid").value_or("");
  auto keys = key_set();
  const detail::Jwk* key = keys ? keys->find(kid, *alg) : nullptr;
  if (key == nullptr) {
    return invalid_token(kid.empty() ? fmt::format("the JWT names no \"kid\" and no single {} key fits", *alg)
                                     : fmt::format("no {} key with kid '{}'", *alg, json::escape(kid.substr(0, 64))));
  }
  if (!detail::verify_signature(*key, token.substr(0, dot2), *signature)) {
    return invalid_token("the JWT signature does not verify");
  }
  auto claims = json::parse(*claims_text);
  if (!claims || !claims->IsObject()) return invalid_token("the JWT claims are not a JSON object");
  const std::int64_t t = now();
  const std::int64_t leeway = o.leeway.count();
  if (!claims->HasMember("exp") || !(*claims)["exp"].IsNumber()) return invalid_token("the JWT has no \"exp\"");
  const auto exp = static_cast<std::int64_t>((*claims)["exp"].GetDouble());
  if (t > exp + leeway) return invalid_token("the JWT has expired");
  if (claims->HasMember("nbf")) {
    if (!(*claims)["nbf"].IsNumber()) return invalid_token("the JWT's \"nbf\" is not a number");
    if (t + leeway < static_cast<std::int64_t>((*claims)["nbf"].GetDouble())) {
      return invalid_token("the JWT is not valid yet (nbf)");
    }
  }
  if (json::get_string(*claims, "iss").value_or("") != o.issuer)
    return invalid_token("the JWT's issuer is not accepted");
  bool audience = false;
  if (claims->HasMember("aud")) {
    const JsonValue& aud = (*claims)["aud"];
    if (aud.IsString()) audience = aud.GetString() == o.audience;
    if (aud.IsArray()) {
      for (const auto& a : aud.GetArray()) audience = audience || (a.IsString() && a.GetString() == o.audience);
    }
  }
  if (!audience) return invalid_token(fmt::format("the JWT's audience does not include '{}'", o.audience));
  Principal p;
  p.kind = "jwt";
  p.name = std::string(json::get_string(*claims, "sub").value_or("jwt"));
  if (auto scope = json::get_string(*claims, o.scope_claim)) {
    for (auto& s : detail::split(*scope, ' ')) {
      if (!s.empty()) p.scopes.push_back(std::move(s));
    }
  }
  if (claims->HasMember("scp") && (*claims)["scp"].IsArray()) {
    for (const auto& s : (*claims)["scp"].GetArray()) {
      if (s.IsString()) p.scopes.emplace_back(s.GetString(), s.GetStringLength());
    }
  }
  remember(digest, p, exp + leeway);
  return p;
}

BearerAuthenticator::BearerAuthenticator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BearerAuthenticator::~BearerAuthenticator() = default;

Result<std::shared_ptr<BearerAuthenticator>> BearerAuthenticator::create(AuthConfig config) {
  auto impl = std::make_unique<Impl>();
  for (std::size_t i = 0; i < config.tokens.size(); ++i) {
    auto d = digest_from_hex(config.tokens[i].sha256_hex);
    if (!d) return make_error("invalid_auth_file", fmt::format("token '{}': bad sha256", config.tokens[i].name));
    impl->tokens.emplace_back(*d, i);
  }
  if (config.jwt) {
    auto keys = detail::KeySet::load(config.jwt->jwks_file);
    if (!keys) return keys.error();
    impl->keys = std::move(keys).value();
  }
  impl->config = std::move(config);
  return std::shared_ptr<BearerAuthenticator>(new BearerAuthenticator(std::move(impl)));
}

Result<Principal> BearerAuthenticator::authenticate(const Request& request) const {
  std::size_t count = 0;
  std::string_view value;
  for (const auto& [name, v] : request.headers.list()) {
    if (detail::iequals(name, "Authorization")) {
      ++count;
      value = v;
    }
  }
  if (count == 0) return make_error("missing_token", "this server requires a bearer token (Authorization: Bearer ...)");
  if (count > 1) return make_error("invalid_request", "the Authorization header appears more than once");
  value = detail::trim(value);
  if (value.size() < 7 || !detail::iequals(value.substr(0, 7), "Bearer ")) {
    return make_error("invalid_token", "the Authorization header is not \"Bearer <token>\"");
  }
  return verify_token(detail::trim(value.substr(7)));
}

Result<Principal> BearerAuthenticator::verify_token(std::string_view token) const {
  if (token.empty()) return make_error("missing_token", "the bearer token is empty");
  const Digest digest = digest_of(token);
  // Every static token is compared, so the time taken says nothing of which
  // (or whether one) matched.
  std::size_t match = impl_->tokens.size();
  for (const auto& [d, index] : impl_->tokens) {
    const bool same = CRYPTO_memcmp(d.data(), digest.data(), kDigestSize) == 0;
    match = same ? index : match;
  }
  if (match < impl_->tokens.size()) {
    const StaticToken& t = impl_->config.tokens[match];
    return Principal{t.name, "token", t.scopes};
  }
  if (auto cached = impl_->recall(digest)) return *cached;
  return impl_->verify_jwt(token, digest);
}

Result<void> BearerAuthenticator::reload_keys() {
  if (!impl_->config.jwt) return {};
  auto keys = detail::KeySet::load(impl_->config.jwt->jwks_file);
  if (!keys) return keys.error();
  {
    std::unique_lock lock(impl_->keys_mutex);
    impl_->keys = std::move(keys).value();
  }
  impl_->forget_all();  // a key that was removed must stop verifying at once
  return {};
}

std::size_t BearerAuthenticator::key_count() const {
  auto keys = impl_->key_set();
  return keys ? keys->size() : 0;
}

const AuthConfig& BearerAuthenticator::config() const { return impl_->config; }

void BearerAuthenticator::set_clock_for_testing(std::function<std::int64_t()> now) {
  impl_->now = std::move(now);
  impl_->forget_all();
}

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
