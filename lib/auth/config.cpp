// Auth files, scope matching and SHA-256 (include/ordinaut/auth.hpp).
#include <algorithm>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <openssl/evp.h>

#include "ordinaut/auth.hpp"
#include "ordinaut/json.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

namespace {

// '*' matches any run of characters other than ':'.
bool matches(std::string_view pattern, std::string_view text) {
  if (pattern.empty()) return text.empty();
  if (pattern.front() == '*') {
    for (std::size_t i = 0;; ++i) {
      if (matches(pattern.substr(1), text.substr(i))) return true;
      if (i == text.size() || text[i] == ':') return false;
    }
  }
  return !text.empty() && pattern.front() == text.front() && matches(pattern.substr(1), text.substr(1));
}

struct Reader {
  const std::filesystem::path& file;

  Error error(std::string pointer, std::string message) const {
    Error e = make_error("invalid_auth_file", fmt::format("{}: {}: {}", file.string(), pointer, message));
    e.pointer = std::move(pointer);
    e.file = file.string();
    return e;
  }

  Result<std::vector<std::string>> strings(const JsonValue& v, const std::string& pointer) const {
    if (!v.IsArray()) return error(pointer, fmt::format("expected an array of strings, got {}", json::type_name(v)));
    std::vector<std::string> out;
    for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
      if (!v[i].IsString() || v[i].GetStringLength() == 0) {
        return error(fmt::format("{}/{}", pointer, i), "expected a non-empty string");
      }
      out.emplace_back(v[i].GetString(), v[i].GetStringLength());
    }
    return out;
  }

  Result<double> rate(const JsonValue& obj, const char* key, const std::string& pointer) const {
    if (!obj.HasMember(key)) return 0.0;
    const JsonValue& v = obj[key];
    if (!v.IsNumber() || v.GetDouble() < 0) {
      return error(pointer + "/" + key, fmt::format("expected a number >= 0, got {}", json::dump(v)));
    }
    return v.GetDouble();
  }
};

bool is_hex_sha256(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

bool scope_allows(const std::vector<std::string>& granted, std::string_view needed) {
  for (const auto& g : granted) {
    if (g == needed || (g.find('*') != std::string::npos && matches(g, needed))) return true;
  }
  return false;
}

std::string sha256_hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

Result<AuthConfig> parse_auth_config(std::string_view text, const std::filesystem::path& file) {
  Reader r{file};
  auto doc = json::parse(text);
  if (!doc) {
    Error e = doc.error();
    e.code = "invalid_auth_file";
    e.message = fmt::format("{}: not valid JSON: {}", file.string(), doc.error().message);
    e.file = file.string();
    return e;
  }
  if (!doc->IsObject()) return r.error("/", "expected an object");
  AuthConfig config;
  config.file = file;
  static constexpr std::string_view kKnown[] = {"tokens", "jwt", "allowed_origins", "allowed_hosts", "rate_limits"};
  for (auto& m : doc->GetObject()) {
    std::string_view key(m.name.GetString(), m.name.GetStringLength());
    if (std::find(std::begin(kKnown), std::end(kKnown), key) == std::end(kKnown)) {
      return r.error("/" + std::string(key),
                     "unknown member (known: tokens, jwt, allowed_origins, allowed_hosts, "
                     "rate_limits)");
    }
  }
  if (doc->HasMember("tokens")) {
    const JsonValue& tokens = (*doc)["tokens"];
    if (!tokens.IsArray()) return r.error("/tokens", "expected an array");
    for (rapidjson::SizeType i = 0; i < tokens.Size(); ++i) {
      const std::string at = fmt::format("/tokens/{}", i);
      const JsonValue& t = tokens[i];
      if (!t.IsObject()) return r.error(at, "expected an object {\"name\", \"sha256\", \"scopes\"}");
      StaticToken token;
      auto name = json::get_string(t, "name");
      if (!name || name->empty()) return r.error(at + "/name", "expected a non-empty string");
      token.name = *name;
      if (t.HasMember("token")) {
        return r.error(at + "/token", "plain tokens are not accepted: store \"sha256\", the hex SHA-256 of the token");
      }
      auto hash = json::get_string(t, "sha256");
      if (!hash || !is_hex_sha256(*hash)) {
        return r.error(at + "/sha256", "expected the lower-case hex SHA-256 of the token (64 characters)");
      }
      token.sha256_hex = *hash;
      if (!t.HasMember("scopes")) return r.error(at + "/scopes", "missing (an array of scopes, may be empty)");
      auto scopes = r.strings(t["scopes"], at + "/scopes");
      if (!scopes) return scopes.error();
      token.scopes = std::move(scopes).value();
      for (const auto& other : config.tokens) {
        if (other.name == token.name)
          return r.error(at + "/name", fmt::format("duplicate token name '{}'", token.name));
        if (other.sha256_hex == token.sha256_hex) {
          return r.error(at + "/sha256", fmt::format("the same token as '{}'", other.name));
        }
      }
      config.tokens.push_back(std::move(token));
    }
  }
  if (doc->HasMember("jwt")) {
    const JsonValue& j = (*doc)["jwt"];
    if (!j.IsObject()) return r.error("/jwt", "expected an object");
    JwtOptions o;
    for (const char* key : {"issuer", "audience", "jwks_file"}) {
      auto v = json::get_string(j, key);
      if (!v || v->empty()) return r.error(std::string("/jwt/") + key, "expected a non-empty string");
    }
    o.issuer = *json::get_string(j, "issuer");
    o.audience = *json::get_string(j, "audience");
    o.jwks_file = std::filesystem::path(std::string(*json::get_string(j, "jwks_file")));
    if (o.jwks_file.is_relative()) o.jwks_file = file.parent_path() / o.jwks_file;
    if (j.HasMember("algorithms")) {
      auto algs = r.strings(j["algorithms"], "/jwt/algorithms");
      if (!algs) return algs.error();
      for (std::size_t i = 0; i < algs->size(); ++i) {
        const auto& a = (*algs)[i];
        if (a != "RS256" && a != "ES256" && a != "EdDSA") {
          return r.error(fmt::format("/jwt/algorithms/{}", i),
                         fmt::format("'{}' is not supported (RS256, ES256, EdDSA; symmetric and 'none' never are)", a));
        }
      }
      if (algs->empty()) return r.error("/jwt/algorithms", "expected at least one algorithm");
      o.algorithms = std::move(algs).value();
    }
    if (auto claim = json::get_string(j, "scope_claim")) o.scope_claim = *claim;
    if (j.HasMember("leeway_s")) {
      if (!j["leeway_s"].IsInt() || j["leeway_s"].GetInt() < 0 || j["leeway_s"].GetInt() > 3600) {
        return r.error("/jwt/leeway_s", "expected whole seconds from 0 to 3600");
      }
      o.leeway = std::chrono::seconds(j["leeway_s"].GetInt());
    }
    config.jwt = std::move(o);
  }
  for (const char* key : {"allowed_origins", "allowed_hosts"}) {
    if (!doc->HasMember(key)) continue;
    auto list = r.strings((*doc)[key], std::string("/") + key);
    if (!list) return list.error();
    (std::string_view(key) == "allowed_origins" ? config.allowed_origins : config.allowed_hosts) = std::move(*list);
  }
  if (doc->HasMember("rate_limits")) {
    const JsonValue& rl = (*doc)["rate_limits"];
    if (!rl.IsObject()) return r.error("/rate_limits", "expected an object");
    auto rps = r.rate(rl, "per_principal_rps", "/rate_limits");
    if (!rps) return rps.error();
    auto burst = r.rate(rl, "burst", "/rate_limits");
    if (!burst) return burst.error();
    config.rate_limits.per_principal_rps = *rps;
    config.rate_limits.burst = *burst;
    if (rl.HasMember("per_extension")) {
      const JsonValue& pe = rl["per_extension"];
      if (!pe.IsObject())
        return r.error("/rate_limits/per_extension", "expected an object {\"id\": {\"rps\", \"burst\"}}");
      for (auto& m : pe.GetObject()) {
        const std::string at = std::string("/rate_limits/per_extension/") + m.name.GetString();
        if (!m.value.IsObject()) return r.error(at, "expected an object {\"rps\", \"burst\"}");
        auto erps = r.rate(m.value, "rps", at);
        if (!erps) return erps.error();
        auto eburst = r.rate(m.value, "burst", at);
        if (!eburst) return eburst.error();
        config.rate_limits.per_extension.push_back({m.name.GetString(), {*erps, *eburst}});
      }
    }
  }
  if (config.tokens.empty() && !config.jwt) {
    return r.error("/", "neither \"tokens\" nor \"jwt\" is given: no request could ever authenticate");
  }
  return config;
}

std::optional<std::string> protected_resource_metadata(const AuthConfig& config,
                                                       const std::vector<std::string>& scopes) {
  if (!config.jwt) return std::nullopt;
  Json doc = json::object();
  auto& a = doc.GetAllocator();
  doc.AddMember("resource", JsonValue(config.jwt->audience.c_str(), a), a);
  JsonValue servers(rapidjson::kArrayType);
  servers.PushBack(JsonValue(config.jwt->issuer.c_str(), a), a);
  doc.AddMember("authorization_servers", servers, a);
  JsonValue methods(rapidjson::kArrayType);
  methods.PushBack("header", a);
  doc.AddMember("bearer_methods_supported", methods, a);
  if (!scopes.empty()) {
    JsonValue list(rapidjson::kArrayType);
    for (const auto& s : scopes) list.PushBack(JsonValue(s.c_str(), a), a);
    doc.AddMember("scopes_supported", list, a);
  }
  JsonValue algs(rapidjson::kArrayType);
  for (const auto& alg : config.jwt->algorithms) algs.PushBack(JsonValue(alg.c_str(), a), a);
  doc.AddMember("resource_signing_alg_values_supported", algs, a);
  doc.AddMember("resource_name", "Ordinaut", a);
  return json::dump(doc);
}

Result<AuthConfig> load_auth_config(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) {
    Error e = make_error("unreadable_auth_file", fmt::format("{}: not a readable regular file", file.string()));
    e.file = file.string();
    return e;
  }
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in && !in.eof()) {
    Error e = make_error("unreadable_auth_file", fmt::format("{}: could not be read", file.string()));
    e.file = file.string();
    return e;
  }
  return parse_auth_config(text.str(), file);
}

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
