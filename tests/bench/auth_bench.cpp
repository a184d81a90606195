// Cost of authentication per request (not a test): ExtensionHost::handle() of
// a trivial route without an authenticator (the baseline), with a static
// bearer token, with a JWT (RS256, ES256, EdDSA) served from the verified-token
// cache, and a JWT verified afresh each time (signature checked by OpenSSL;
// the cache is emptied by reload_keys(), whose JWKS re-read is in that figure).
// Keys are made with the openssl CLI, as in tests/auth.
//
// usage: auth_bench [iterations]      prints ns/op, median of 5 rounds
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <ordinaut/auth.hpp>
#include <ordinaut/host.hpp>

#include "../auth/keys.hpp"

namespace {

using Clock = std::chrono::steady_clock;

template <typename Fn>
double ns_per_op(long iterations, Fn&& fn) {
  std::vector<double> rounds;
  for (int r = 0; r < 5; ++r) {
    const auto start = Clock::now();
    for (long i = 0; i < iterations; ++i) fn();
    rounds.push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count() /
                     static_cast<double>(iterations));
  }
  std::sort(rounds.begin(), rounds.end());
  return rounds[rounds.size() / 2];
}

struct Ping final : ordinaut::Extension {
  ordinaut::ExtensionInfo info() const override { return {"bench", "Bench", "1.0.0", "bench"}; }
  ordinaut::CapabilitySet requested_capabilities() const override {
    return ordinaut::CapabilitySet{ordinaut::Capability::ROUTES};
  }
  std::optional<ordinaut::Router> setup(ordinaut::SetupContext&) override {
    ordinaut::Router r;
    r.get("/ping", [](ordinaut::Request&) { return ordinaut::Response::text(200, "pong"); });
    return r;
  }
};

std::unique_ptr<ordinaut::ExtensionHost> make_host(std::shared_ptr<const ordinaut::Authenticator> auth) {
  ordinaut::HostOptions o;
  o.read_environment = false;
  o.use_registered_extensions = false;
  o.log_sink = [](const ordinaut::LogRecord&) {};
  o.authenticator = std::move(auth);
  auto host = std::make_unique<ordinaut::ExtensionHost>(std::move(o));
  host->add_linked("bench", [] { return std::make_unique<Ping>(); },
                   ordinaut::CapabilitySet{ordinaut::Capability::ROUTES}, true);
  if (!host->start()) std::exit(1);
  return host;
}

}  // namespace

int main(int argc, char** argv) {
  const long iterations = argc > 1 ? std::atol(argv[1]) : 20'000;
  char dir_template[] = "/tmp/ordinaut-auth-bench-XXXXXX";
  const std::filesystem::path dir = ::mkdtemp(dir_template);
  ordinaut_test::TestKeys keys(dir);
  auto config = ordinaut::parse_auth_config(
      fmt::format(R"({{"tokens":[{{"name":"ops","sha256":"{}","scopes":["ext:*:routes"]}}],)"
                  R"("jwt":{{"issuer":"https://id.example","audience":"ordinaut","jwks_file":"{}"}}}})",
                  ordinaut::sha256_hex("bench-token"), keys.jwks_file().string()),
      dir / "auth.json");
  auto auth = ordinaut::BearerAuthenticator::create(std::move(config).value()).value();

  auto plain = make_host(nullptr);
  auto secured = make_host(auth);
  auto request = [](std::string token) {
    ordinaut::Request r;
    r.method = "GET";
    r.path = "/ext/bench/ping";
    r.remote_addr = "127.0.0.1";
    if (!token.empty()) r.headers.add("Authorization", "Bearer " + token);
    return r;
  };
  long sink = 0;
  auto route = [&](ordinaut::ExtensionHost& host, const std::string& token) {
    ordinaut::Request r = request(token);
    sink += host.handle(r).status;
  };
  std::printf("auth_bench: %ld iterations x 5 rounds, median, one route through ExtensionHost::handle\n", iterations);
  const double base = ns_per_op(iterations, [&] { route(*plain, ""); });
  std::printf("%-40s %9.1f ns/op\n", "no authenticator (baseline)", base);
  const double token = ns_per_op(iterations, [&] { route(*secured, "bench-token"); });
  std::printf("%-40s %9.1f ns/op   +%.1f ns\n", "static token (SHA-256, constant time)", token, token - base);
  for (auto [alg, kid] : {std::pair{"RS256", "rsa1"}, std::pair{"ES256", "ec1"}, std::pair{"EdDSA", "ed1"}}) {
    const std::string jwt = keys.token(alg, kid, "ext:*:routes", 86400);
    const double cached = ns_per_op(iterations, [&] { route(*secured, jwt); });
    const double fresh = ns_per_op(std::max(1L, iterations / 20), [&] {
      (void)auth->reload_keys();  // empties the cache: the signature is checked again
      route(*secured, jwt);
    });
    std::printf("%-40s %9.1f ns/op   +%.1f ns;  uncached, with a JWKS re-read: %.1f us/op\n",
                fmt::format("JWT {} (cache hit)", alg).c_str(), cached, cached - base, fresh / 1000);
  }
  std::printf("(sink %ld)\n", sink % 7);
  std::filesystem::remove_all(dir);
  return 0;
}
