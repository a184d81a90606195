// lib/auth: auth files, scope wildcards, static tokens and JWTs (RS256,
// ES256, EdDSA) verified with real keys made by the openssl CLI.
#include <doctest/doctest.h>

#include <ctime>

#include "keys.hpp"
#include "ordinaut/auth.hpp"
#include "support.hpp"

using namespace ordinaut_test;
using ordinaut::AuthConfig;
using ordinaut::BearerAuthenticator;
using ordinaut::Request;
using test_support::parse_json;
using test_support::str;
using test_support::TempDir;

namespace {

Request with_auth(const std::string& value) {
  Request r;
  r.method = "GET";
  r.path = "/ext/x";
  r.headers.add("Authorization", value);
  return r;
}

std::string auth_file_text(const std::filesystem::path& jwks, const std::string& extra = "") {
  return fmt::format(
      R"({{"tokens":[{{"name":"ops","sha256":"{}","scopes":["ext:admin","ext:*:routes"]}},)"
      R"({{"name":"reader","sha256":"{}","scopes":["ext:status"]}}],)"
      R"("jwt":{{"issuer":"https://id.example","audience":"ordinaut","jwks_file":"{}","leeway_s":60}}{}}})",
      ordinaut::sha256_hex("ops-secret-token"), ordinaut::sha256_hex("reader-token"), jwks.string(), extra);
}

std::shared_ptr<BearerAuthenticator> make(const TestKeys& keys) {
  auto config = ordinaut::parse_auth_config(auth_file_text(keys.jwks_file()), keys.dir() / "auth.json");
  REQUIRE_MESSAGE(config, (config ? "" : config.error().message));
  auto auth = BearerAuthenticator::create(std::move(config).value());
  REQUIRE_MESSAGE(auth, (auth ? "" : auth.error().message));
  return *auth;
}

}  // namespace

TEST_CASE("auth: scope wildcards match one segment") {
  using ordinaut::scope_allows;
  CHECK(scope_allows({"ext:*:routes"}, "ext:shop:routes"));
  CHECK_FALSE(scope_allows({"ext:*:routes"}, "ext:shop:admin"));
  CHECK_FALSE(scope_allows({"ext:*:routes"}, "ext:a:b:routes"));  // '*' stops at ':'
  CHECK(scope_allows({"tool:*"}, "tool:ext.shop.order"));
  CHECK_FALSE(scope_allows({"tool:*"}, "ext:admin"));
  CHECK(scope_allows({"ext:admin"}, "ext:admin"));
  CHECK_FALSE(scope_allows({"ext:admi"}, "ext:admin"));
  CHECK_FALSE(scope_allows({}, "ext:admin"));
  CHECK(scope_allows({"ext:s*:routes"}, "ext:shop:routes"));
  CHECK_FALSE(scope_allows({"ext:s*:routes"}, "ext:other:routes"));
}

TEST_CASE("auth: an auth file is checked, with the pointer of what is wrong") {
  const std::filesystem::path f = "/etc/ordinaut/auth.json";
  auto bad = [&](const std::string& text, const std::string& pointer) {
    auto c = ordinaut::parse_auth_config(text, f);
    REQUIRE_FALSE(c);
    CHECK(c.error().code == "invalid_auth_file");
    CHECK(c.error().pointer == pointer);
    CHECK(c.error().message.find(f.string()) != std::string::npos);
    return c.error().message;
  };
  bad("{", "");
  bad("[]", "/");
  bad("{}", "/");  // neither tokens nor jwt
  CHECK(bad(R"({"tokens":[{"name":"a","token":"plain","scopes":[]}]})", "/tokens/0/token").find("plain tokens") !=
        std::string::npos);
  bad(R"({"tokens":[{"name":"a","sha256":"abc","scopes":[]}]})", "/tokens/0/sha256");
  bad(R"({"tokens":[{"name":"a","sha256":")" + ordinaut::sha256_hex("x") + R"("}]})", "/tokens/0/scopes");
  bad(R"({"tokens":[{"name":"a","sha256":")" + ordinaut::sha256_hex("x") + R"(","scopes":[1]}]})",
      "/tokens/0/scopes/0");
  bad(R"({"tokens":[{"name":"a","sha256":")" + ordinaut::sha256_hex("x") + R"(","scopes":[]},)" +
          R"({"name":"b","sha256":")" + ordinaut::sha256_hex("x") + R"(","scopes":[]}]})",
      "/tokens/1/sha256");
  bad(R"({"jwt":{"issuer":"i","audience":"a","jwks_file":"k","algorithms":["HS256"]}})", "/jwt/algorithms/0");
  bad(R"({"jwt":{"issuer":"i","audience":"a","jwks_file":"k","algorithms":["none"]}})", "/jwt/algorithms/0");
  bad(R"({"jwt":{"issuer":"","audience":"a","jwks_file":"k"}})", "/jwt/issuer");
  bad(R"({"tokens":[],"jwt":{"issuer":"i","audience":"a","jwks_file":"k"},"surprise":1})", "/surprise");
  bad(R"({"jwt":{"issuer":"i","audience":"a","jwks_file":"k"},"rate_limits":{"burst":-1}})", "/rate_limits/burst");

  auto good = ordinaut::parse_auth_config(
      R"({"jwt":{"issuer":"i","audience":"a","jwks_file":"keys/jwks.json"},"allowed_origins":["https://c.example"],)"
      R"("rate_limits":{"per_principal_rps":50,"burst":100,"per_extension":{"shop":{"rps":5,"burst":10}}}})",
      f);
  REQUIRE(good);
  CHECK(good->jwt->jwks_file == "/etc/ordinaut/keys/jwks.json");  // relative to the auth file
  CHECK(good->allowed_origins.at(0) == "https://c.example");
  CHECK(good->rate_limits.per_principal_rps == 50);
  CHECK(good->rate_limits.per_extension.at(0).first == "shop");
  CHECK(good->jwt->leeway == std::chrono::seconds(60));
}

TEST_CASE("auth: static tokens, compared by their SHA-256") {
  TempDir dir;
  TestKeys keys(dir.path() / "keys");
  auto auth = make(keys);

  auto ok = auth->authenticate(with_auth("Bearer ops-secret-token"));
  REQUIRE(ok);
  CHECK(ok->name == "ops");
  CHECK(ok->kind == "token");
  CHECK(ordinaut::scope_allows(ok->scopes, "ext:shop:routes"));
  CHECK(auth->authenticate(with_auth("bearer   reader-token  "))->name == "reader");

  auto wrong = auth->authenticate(with_auth("Bearer ops-secret-tokeN"));
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error().code == "invalid_token");
  CHECK(wrong.error().message.find("ops-secret") == std::string::npos);  // never echo a token

  Request none;
  CHECK(auth->authenticate(none).error().code == "missing_token");
  CHECK(auth->authenticate(with_auth("Basic b3BzOnNlY3JldA==")).error().code == "invalid_token");
  CHECK(auth->authenticate(with_auth("Bearer ")).error().code == "invalid_token");

  Request twice = with_auth("Bearer reader-token");
  twice.headers.add("authorization", "Bearer ops-secret-token");
  CHECK(auth->authenticate(twice).error().code == "invalid_request");
}

TEST_CASE("auth: JWTs signed with RS256, ES256 and EdDSA from a JWKS") {
  TempDir dir;
  TestKeys keys(dir.path() / "keys");
  auto auth = make(keys);
  CHECK(auth->key_count() == 3);  // the symmetric key is never loaded

  for (auto [alg, kid] : {std::pair{"RS256", "rsa1"}, std::pair{"ES256", "ec1"}, std::pair{"EdDSA", "ed1"}}) {
    CAPTURE(alg);
    const std::string token = keys.token(alg, kid, "ext:admin ext:*:routes");
    auto p = auth->verify_token(token);
    REQUIRE_MESSAGE(p, (p ? "" : p.error().message));
    CHECK(p->name == "alice");
    CHECK(p->kind == "jwt");
    CHECK(p->scopes == std::vector<std::string>{"ext:admin", "ext:*:routes"});
    CHECK(auth->verify_token(token));  // again, from the cache

    // Tampered claims: same signature, other payload.
    const auto dot1 = token.find('.'), dot2 = token.rfind('.');
    const std::string forged_claims = base64url(R"({"iss":"https://id.example","aud":"ordinaut","sub":"mallory",)"
                                                R"("exp":9999999999,"scope":"ext:admin"})");
    auto tampered = auth->verify_token(token.substr(0, dot1 + 1) + forged_claims + token.substr(dot2));
    REQUIRE_FALSE(tampered);
    CHECK(tampered.error().message == "the JWT signature does not verify");
    // A flipped signature byte.
    std::string flipped = token;
    flipped[dot2 + 5] = flipped[dot2 + 5] == 'A' ? 'B' : 'A';
    CHECK_FALSE(auth->verify_token(flipped));
  }
}

TEST_CASE("auth: JWTs refused for their claims, algorithm or key") {
  TempDir dir;
  TestKeys keys(dir.path() / "keys");
  auto auth = make(keys);
  auto refused = [&](const std::string& token) {
    auto p = auth->verify_token(token);
    REQUIRE_FALSE(p);
    CHECK(p.error().code == "invalid_token");
    return p.error().message;
  };
  const long now = static_cast<long>(std::time(nullptr));
  CHECK(refused(keys.token("RS256", "rsa1", "ext:admin", -3600)) == "the JWT has expired");
  CHECK(auth->verify_token(keys.token("RS256", "rsa1", "ext:admin", -30)));  // within the 60 s leeway
  CHECK(refused(keys.sign("ES256", R"({"alg":"ES256","kid":"ec1"})",
                          fmt::format(R"({{"iss":"https://id.example","aud":"someone-else","exp":{}}})", now + 60)))
            .find("audience") != std::string::npos);
  CHECK(refused(keys.sign("ES256", R"({"alg":"ES256","kid":"ec1"})",
                          fmt::format(R"({{"iss":"https://evil.example","aud":"ordinaut","exp":{}}})", now + 60))) ==
        "the JWT's issuer is not accepted");
  CHECK(refused(keys.sign("EdDSA", R"({"alg":"EdDSA","kid":"ed1"})",
                          R"({"iss":"https://id.example","aud":"ordinaut"})")) == "the JWT has no \"exp\"");
  CHECK(refused(keys.token("EdDSA", "ed1", "x", 3600, fmt::format(R"(,"nbf":{})", now + 3600))) ==
        "the JWT is not valid yet (nbf)");
  CHECK(auth->verify_token(keys.sign("RS256", R"({"alg":"RS256","kid":"rsa1"})",
                                     fmt::format(R"({{"iss":"https://id.example","aud":["x","ordinaut"],"exp":{}}})",
                                                 now + 60))));  // aud as an array
  CHECK(refused(keys.sign("none", R"({"alg":"none"})",
                          fmt::format(R"({{"iss":"https://id.example","aud":"ordinaut","exp":{}}})", now + 60)))
            .find("'none' is not accepted") != std::string::npos);
  CHECK(refused(keys.sign("HS256", R"({"alg":"HS256","kid":"hmac"})",
                          fmt::format(R"({{"iss":"https://id.example","aud":"ordinaut","exp":{}}})", now + 60)))
            .find("'HS256' is not accepted") != std::string::npos);
  CHECK(refused(keys.token("RS256", "rsa-unknown", "x")) == "no RS256 key with kid 'rsa-unknown'");
  // A key of the wrong type for the algorithm: ES256 naming the RSA key.
  CHECK(refused(keys.token("ES256", "rsa1", "x")) == "no ES256 key with kid 'rsa1'");
  refused("not-a-jwt");
  refused("a.b.c.d");
  refused("!!.!!.!!");
}

TEST_CASE("auth: reload_keys drops a removed key at once, cache included") {
  TempDir dir;
  TestKeys keys(dir.path() / "keys");
  auto auth = make(keys);
  const std::string token = keys.token("EdDSA", "ed1", "ext:admin");
  REQUIRE(auth->verify_token(token));  // now cached
  keys.write_jwks(true, true, false);
  REQUIRE(auth->reload_keys());
  CHECK(auth->key_count() == 2);
  CHECK_FALSE(auth->verify_token(token));

  std::ofstream(keys.jwks_file()) << "{broken";
  auto failed = auth->reload_keys();
  REQUIRE_FALSE(failed);
  CHECK(failed.error().code == "invalid_jwks");
  CHECK(auth->key_count() == 2);  // the keys in use stay
  CHECK(auth->verify_token(keys.token("RS256", "rsa1", "x")));
}

TEST_CASE("auth: the clock decides expiry, also for cached tokens") {
  TempDir dir;
  TestKeys keys(dir.path() / "keys");
  auto auth = make(keys);
  const std::string token = keys.token("RS256", "rsa1", "x", 600);
  REQUIRE(auth->verify_token(token));
  const std::int64_t later = static_cast<std::int64_t>(std::time(nullptr)) + 600 + 61;
  auth->set_clock_for_testing([later] { return later; });
  CHECK(auth->verify_token(token).error().message == "the JWT has expired");
}

TEST_CASE("auth: protected resource metadata names the audience and the issuer (RFC 9728)") {
  auto config = ordinaut::parse_auth_config(
      R"({"jwt":{"issuer":"https://id.example","audience":"http://127.0.0.1:8080/ext/mcp_http/mcp","jwks_file":"k"}})",
      "/etc/auth.json");
  REQUIRE(config);
  auto text = ordinaut::protected_resource_metadata(*config, {"ext:mcp_http:mcp", "tool:*"});
  REQUIRE(text);
  ordinaut::Json doc = parse_json(*text);
  CHECK(str(doc["resource"]) == "http://127.0.0.1:8080/ext/mcp_http/mcp");
  CHECK(str(doc["authorization_servers"][0]) == "https://id.example");
  CHECK(str(doc["bearer_methods_supported"][0]) == "header");
  CHECK(str(doc["scopes_supported"][1]) == "tool:*");
  auto tokens_only = ordinaut::parse_auth_config(
      R"({"tokens":[{"name":"a","sha256":")" + ordinaut::sha256_hex("t") + R"(","scopes":[]}]})", "/etc/auth.json");
  REQUIRE(tokens_only);
  CHECK_FALSE(ordinaut::protected_resource_metadata(*tokens_only));
}
