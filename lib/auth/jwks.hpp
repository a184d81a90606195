// JSON Web Keys and JWS signature checks with OpenSSL (internal to lib/auth).
//
// Owns: turning a JWKS document into OpenSSL public keys (RSA, EC P-256,
// Ed25519) and verifying RS256, ES256 and EdDSA signatures with them. No
// crypto is written here: every check is an OpenSSL EVP call.
//
// Thread safety: a KeySet is immutable once loaded; verify() may run on any
// number of threads at once (each call has its own EVP context).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ordinaut/result.hpp"

typedef struct evp_pkey_st EVP_PKEY;

namespace ordinaut::detail {

struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const noexcept;
};

struct Jwk {
  std::string kid;
  std::string alg;  // the JWS algorithm it verifies: RS256, ES256 or EdDSA
  std::unique_ptr<EVP_PKEY, PkeyDeleter> key;
};

class KeySet {
 public:
  // Reads a JWKS file ({"keys": [...]}). Keys of a kind we do not verify
  // (symmetric "oct", other curves, "use": "enc") are skipped; a malformed key
  // of a kind we do verify is an error naming it.
  static Result<std::shared_ptr<const KeySet>> load(const std::filesystem::path& file);
  static Result<std::shared_ptr<const KeySet>> parse(std::string_view text, const std::string& where);

  // The key for `kid` verifying `alg`; with no kid, the only key for `alg`.
  const Jwk* find(std::string_view kid, std::string_view alg) const;
  std::size_t size() const { return keys_.size(); }

 private:
  std::vector<Jwk> keys_;
};

// True when `signature` is `alg`'s signature of `signed_part` by `key`.
// ES256 signatures are the JWS form (r || s, 64 bytes).
bool verify_signature(const Jwk& key, std::string_view signed_part, std::string_view signature);

// Base64url without padding (RFC 7515 §2); nullopt on any other character.
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace ordinaut::detail
