// Real keys and tokens for the auth tests, made with the openssl CLI (no
// crypto in the tests themselves): RSA-2048 (RS256), P-256 (ES256) and
// Ed25519 (EdDSA) key pairs, their JWKS, and JWTs signed by them.
#pragma once

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace ordinaut_test {

// Runs a shell command; returns its stdout. Throws when it fails.
inline std::string run_command(const std::string& command) {
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) throw std::runtime_error("popen failed: " + command);
  std::string out;
  std::array<char, 4096> buffer{};
  std::size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), p)) > 0) out.append(buffer.data(), n);
  if (::pclose(p) != 0) throw std::runtime_error("command failed: " + command);
  return out;
}

inline std::string read_binary(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::string base64url(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (bytes.size() - i == 1) {
    const unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
  } else if (bytes.size() - i == 2) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

inline std::string from_hex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  return out;
}

// DER ECDSA-Sig-Value → JWS r || s (32 bytes each).
inline std::string der_to_jws(const std::string& der) {
  std::size_t pos = 2;  // SEQUENCE, length (short form: a P-256 signature is < 128 bytes)
  auto integer = [&] {
    if (static_cast<unsigned char>(der.at(pos)) != 0x02) throw std::runtime_error("bad DER signature");
    std::size_t len = static_cast<unsigned char>(der.at(pos + 1));
    std::string v = der.substr(pos + 2, len);
    pos += 2 + len;
    while (v.size() > 32 && v.front() == '\0') v.erase(0, 1);
    return std::string(32 - v.size(), '\0') + v;
  };
  std::string r = integer();
  std::string s = integer();
  return r + s;
}

// Three key pairs in a folder, with a JWKS file of their public halves.
class TestKeys {
 public:
  explicit TestKeys(std::filesystem::path dir) : dir_(std::move(dir)) {
    std::filesystem::create_directories(dir_);
    const std::string d = dir_.string();
    run_command(
        fmt::format("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out {}/rsa.pem 2>/dev/null", d));
    run_command(
        fmt::format("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {}/ec.pem 2>/dev/null", d));
    run_command(fmt::format("openssl genpkey -algorithm ED25519 -out {}/ed.pem 2>/dev/null", d));
    std::string modulus = run_command(fmt::format("openssl rsa -in {}/rsa.pem -noout -modulus 2>/dev/null", d));
    modulus = modulus.substr(modulus.find('=') + 1);
    while (!modulus.empty() && (modulus.back() == '\n' || modulus.back() == '\r')) modulus.pop_back();
    rsa_jwk_ = fmt::format(R"({{"kty":"RSA","kid":"rsa1","use":"sig","alg":"RS256","n":"{}","e":"AQAB"}})",
                           base64url(from_hex(modulus)));
    run_command(fmt::format("openssl pkey -in {}/ec.pem -pubout -outform DER -out {}/ec.der 2>/dev/null", d, d));
    const std::string ec = read_binary(dir_ / "ec.der");
    const std::string point = ec.substr(ec.size() - 64);  // after the 0x04 of the uncompressed point
    ec_jwk_ = fmt::format(R"({{"kty":"EC","kid":"ec1","crv":"P-256","x":"{}","y":"{}"}})",
                          base64url(point.substr(0, 32)), base64url(point.substr(32)));
    run_command(fmt::format("openssl pkey -in {}/ed.pem -pubout -outform DER -out {}/ed.der 2>/dev/null", d, d));
    const std::string ed = read_binary(dir_ / "ed.der");
    ed_jwk_ =
        fmt::format(R"({{"kty":"OKP","kid":"ed1","crv":"Ed25519","x":"{}"}})", base64url(ed.substr(ed.size() - 32)));
    write_jwks(true, true, true);
  }

  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path jwks_file() const { return dir_ / "jwks.json"; }

  // Rewrites the JWKS with the chosen keys (a symmetric "oct" key always
  // rides along: it must never be used).
  void write_jwks(bool rsa, bool ec, bool ed) const {
    std::string keys = R"({"kty":"oct","kid":"hmac","k":"c2VjcmV0"})";
    if (rsa) keys += "," + rsa_jwk_;
    if (ec) keys += "," + ec_jwk_;
    if (ed) keys += "," + ed_jwk_;
    std::ofstream(jwks_file()) << R"({"keys":[)" << keys << "]}";
  }

  // A JWT with `header_json` and `claims_json`, signed as `alg` with the
  // matching key ("none" and "HS256" are signed with nothing and garbage).
  std::string sign(const std::string& alg, const std::string& header_json, const std::string& claims_json) const {
    const std::string input = base64url(header_json) + "." + base64url(claims_json);
    const std::filesystem::path in = dir_ / "input.txt", sig = dir_ / "sig.bin";
    std::ofstream(in, std::ios::binary) << input;
    const std::string d = dir_.string();
    std::string signature;
    if (alg == "RS256") {
      run_command(fmt::format("openssl dgst -sha256 -sign {}/rsa.pem -out {} {}", d, sig.string(), in.string()));
      signature = read_binary(sig);
    } else if (alg == "ES256") {
      run_command(fmt::format("openssl dgst -sha256 -sign {}/ec.pem -out {} {}", d, sig.string(), in.string()));
      signature = der_to_jws(read_binary(sig));
    } else if (alg == "EdDSA") {
      run_command(
          fmt::format("openssl pkeyutl -sign -rawin -inkey {}/ed.pem -in {} -out {}", d, in.string(), sig.string()));
      signature = read_binary(sig);
    } else if (alg == "HS256") {
      signature = std::string(32, 'x');
    }
    return input + "." + base64url(signature);
  }

  // The usual token: iss/aud as the tests configure, valid for an hour.
  std::string token(const std::string& alg, const std::string& kid, const std::string& scope, long exp_offset = 3600,
                    const std::string& extra_claims = "") const {
    const long now = static_cast<long>(std::time(nullptr));
    return sign(alg, fmt::format(R"({{"alg":"{}","typ":"JWT","kid":"{}"}})", alg, kid),
                fmt::format(R"({{"iss":"https://id.example","aud":"ordinaut","sub":"alice","exp":{},"scope":"{}"{}}})",
                            now + exp_offset, scope, extra_claims));
  }

 private:
  std::filesystem::path dir_;
  std::string rsa_jwk_, ec_jwk_, ed_jwk_;
};

}  // namespace ordinaut_test
