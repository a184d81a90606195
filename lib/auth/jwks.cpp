// JSON Web Keys and JWS signature checks (jwks.hpp).
#include "auth/jwks.hpp"

#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "ordinaut/json.hpp"

namespace ordinaut::detail {

void PkeyDeleter::operator()(EVP_PKEY* key) const noexcept { EVP_PKEY_free(key); }

namespace {

using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

struct BnFree {
  void operator()(BIGNUM* b) const noexcept { BN_free(b); }
};
struct ParamBldFree {
  void operator()(OSSL_PARAM_BLD* b) const noexcept { OSSL_PARAM_BLD_free(b); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const noexcept { OSSL_PARAM_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* c) const noexcept { EVP_PKEY_CTX_free(c); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
};
struct EcdsaSigFree {
  void operator()(ECDSA_SIG* s) const noexcept { ECDSA_SIG_free(s); }
};

Pkey from_params(const char* type, OSSL_PARAM_BLD* bld) {
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld));
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* key = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
      EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0) {
    return nullptr;
  }
  return Pkey(key);
}

Pkey rsa_key(const std::string& n, const std::string& e) {
  std::unique_ptr<BIGNUM, BnFree> bn_n(
      BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()), static_cast<int>(n.size()), nullptr));
  std::unique_ptr<BIGNUM, BnFree> bn_e(
      BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()), static_cast<int>(e.size()), nullptr));
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
  if (!bn_n || !bn_e || !bld || !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get())) {
    return nullptr;
  }
  return from_params("RSA", bld.get());
}

Pkey p256_key(const std::string& x, const std::string& y) {
  std::string point = "\x04" + x + y;  // uncompressed SEC1 point
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
  if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
      !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size())) {
    return nullptr;
  }
  return from_params("EC", bld.get());
}

Pkey ed25519_key(const std::string& x) {
  return Pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(x.data()),
                                          x.size()));
}

}  // namespace

std::optional<std::string> base64url_decode(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
  };
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const int v = value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;  // non-canonical trailing bits
  return out;
}

Result<std::shared_ptr<const KeySet>> KeySet::parse(std::string_view text, const std::string& where) {
  auto fail = [&](std::string pointer, std::string message) {
    Error e = make_error("invalid_jwks", fmt::format("{}: {}: {}", where, pointer, message));
    e.pointer = std::move(pointer);
    e.file = where;
    return e;
  };
  auto doc = json::parse(text);
  if (!doc) return fail("/", "not valid JSON: " + doc.error().message);
  if (!doc->IsObject() || !doc->HasMember("keys") || !(*doc)["keys"].IsArray()) {
    return fail("/keys", "expected {\"keys\": [...]}");
  }
  auto set = std::make_shared<KeySet>();
  const JsonValue& keys = (*doc)["keys"];
  for (rapidjson::SizeType i = 0; i < keys.Size(); ++i) {
    const std::string at = fmt::format("/keys/{}", i);
    const JsonValue& k = keys[i];
    if (!k.IsObject()) return fail(at, "expected an object");
    auto kty = json::get_string(k, "kty");
    if (!kty) return fail(at + "/kty", "missing");
    if (auto use = json::get_string(k, "use"); use && *use != "sig") continue;
    auto member = [&](const char* name) -> Result<std::string> {
      auto v = json::get_string(k, name);
      if (!v) return fail(at + "/" + name, "missing");
      auto bytes = base64url_decode(*v);
      if (!bytes || bytes->empty()) return fail(at + "/" + name, "not base64url");
      return *bytes;
    };
    Jwk jwk;
    if (auto kid = json::get_string(k, "kid")) jwk.kid = *kid;
    if (*kty == "RSA") {
      auto n = member("n");
      if (!n) return n.error();
      auto e = member("e");
      if (!e) return e.error();
      if (n->size() < 256)
        return fail(at + "/n", fmt::format("an RSA key of {} bits is too small (2048 at least)", n->size() * 8));
      jwk.alg = "RS256";
      jwk.key = rsa_key(*n, *e);
    } else if (*kty == "EC") {
      auto crv = json::get_string(k, "crv");
      if (!crv || *crv != "P-256") continue;  // ES256 only
      auto x = member("x");
      if (!x) return x.error();
      auto y = member("y");
      if (!y) return y.error();
      if (x->size() != 32 || y->size() != 32) return fail(at, "a P-256 key has 32-byte x and y");
      jwk.alg = "ES256";
      jwk.key = p256_key(*x, *y);
    } else if (*kty == "OKP") {
      auto crv = json::get_string(k, "crv");
      if (!crv || *crv != "Ed25519") continue;
      auto x = member("x");
      if (!x) return x.error();
      if (x->size() != 32) return fail(at + "/x", "an Ed25519 key is 32 bytes");
      jwk.alg = "EdDSA";
      jwk.key = ed25519_key(*x);
    } else {
      continue;  // "oct" (symmetric) and others are never used
    }
    if (auto alg = json::get_string(k, "alg"); alg && *alg != jwk.alg) {
      return fail(at + "/alg", fmt::format("'{}' does not fit a key of type {}", *alg, *kty));
    }
    if (!jwk.key) return fail(at, "OpenSSL refused the key");
    set->keys_.push_back(std::move(jwk));
  }
  return std::shared_ptr<const KeySet>(std::move(set));
}

Result<std::shared_ptr<const KeySet>> KeySet::load(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    Error e = make_error("invalid_jwks", fmt::format("{}: cannot be read", file.string()));
    e.file = file.string();
    return e;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return parse(text.str(), file.string());
}

const Jwk* KeySet::find(std::string_view kid, std::string_view alg) const {
  const Jwk* only = nullptr;
  std::size_t count = 0;
  for (const auto& k : keys_) {
    if (k.alg != alg) continue;
    if (!kid.empty() && k.kid == kid) return &k;
    ++count;
    only = &k;
  }
  return kid.empty() && count == 1 ? only : nullptr;
}

bool verify_signature(const Jwk& key, std::string_view signed_part, std::string_view signature) {
  std::string der;
  if (key.alg == "ES256") {
    // JWS carries r || s; OpenSSL verifies a DER ECDSA-Sig-Value.
    if (signature.size() != 64) return false;
    std::unique_ptr<ECDSA_SIG, EcdsaSigFree> sig(ECDSA_SIG_new());
    BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(signature.data()), 32, nullptr);
    BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(signature.data()) + 32, 32, nullptr);
    if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
      BN_free(r);
      BN_free(s);
      return false;
    }
    unsigned char* out = nullptr;
    const int length = i2d_ECDSA_SIG(sig.get(), &out);
    if (length <= 0) return false;
    der.assign(reinterpret_cast<char*>(out), static_cast<std::size_t>(length));
    OPENSSL_free(out);
    signature = der;
  }
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx) return false;
  const EVP_MD* md = key.alg == "EdDSA" ? nullptr : EVP_sha256();
  if (EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key.key.get()) != 1) return false;
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                          reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size()) == 1;
}

}  // namespace ordinaut::detail
