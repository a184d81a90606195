// Redis URL parsing (see include/ordinaut/redis_bus.hpp, parse_redis_url).
#include <cctype>
#include <charconv>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "core/strings.hpp"
#include "ordinaut/redis_bus.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

std::string RedisUrl::redacted() const {
  std::string auth;
  if (!password.empty()) auth = fmt::format("{}:***@", username);
  const bool v6 = host.find(':') != std::string::npos;
  return fmt::format("redis://{}{}{}{}:{}/{}", auth, v6 ? "[" : "", host, v6 ? "]" : "", port, db);
}

namespace {

Error url_error(std::string_view url, std::string message) {
  Error e = make_error("invalid_redis_url", fmt::format("Redis URL \"{}\": {}", url, message));
  return e;
}

// Percent-decodes a userinfo part; nullopt when an escape is malformed.
std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    const int hi = detail::hex_value(s[i + 1]), lo = detail::hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

std::optional<long> parse_decimal(std::string_view s, long min, long max) {
  if (s.empty() || s.size() > 9) return std::nullopt;
  long value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || value < min || value > max) return std::nullopt;
  return value;
}

}  // namespace

Result<RedisUrl> parse_redis_url(std::string_view url) {
  constexpr std::string_view kScheme = "redis://";
  if (!url.starts_with(kScheme)) {
    if (url.starts_with("rediss://")) return url_error(url, "TLS (rediss://) is not supported; use redis://");
    return url_error(url, "must start with redis:// (form redis://[:password@]host:port/db)");
  }
  std::string_view rest = url.substr(kScheme.size());
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return url_error(url, "query strings and fragments are not supported");
  }
  RedisUrl out;
  // userinfo: everything before the last '@' (a password may contain '@' only as %40).
  if (auto at = rest.find('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    if (rest.find('@') != std::string_view::npos) return url_error(url, "write '@' in the password as %40");
    auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      return url_error(url, "credentials must be \":password@\" or \"user:password@\"");
    }
    auto user = percent_decode(userinfo.substr(0, colon));
    auto pass = percent_decode(userinfo.substr(colon + 1));
    if (!user || !pass) return url_error(url, "malformed percent escape in the credentials");
    if (pass->empty()) return url_error(url, "the password is empty");
    out.username = std::move(*user);
    out.password = std::move(*pass);
  }
  std::string_view authority = rest.substr(0, rest.find('/'));
  std::string_view path = rest.size() > authority.size() ? rest.substr(authority.size() + 1) : std::string_view{};
  std::string_view port_text;
  if (authority.starts_with("[")) {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return url_error(url, "unterminated [IPv6] host");
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return url_error(url, fmt::format("unexpected \"{}\" after the host", after));
      port_text = after.substr(1);
      if (port_text.empty()) return url_error(url, "the port after ':' is empty");
    }
  } else {
    auto colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return url_error(url, "the port after ':' is empty");
    }
  }
  if (out.host.empty()) return url_error(url, "the host is empty");
  for (char c : out.host) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' || c == ':')) {
      return url_error(url, fmt::format("the host \"{}\" contains '{}'", out.host, c));
    }
  }
  if (!port_text.empty()) {
    auto port = parse_decimal(port_text, 1, 65535);
    if (!port) return url_error(url, fmt::format("the port \"{}\" is not a number from 1 to 65535", port_text));
    out.port = static_cast<int>(*port);
  }
  if (!path.empty()) {
    auto db = parse_decimal(path, 0, 1000000);
    if (!db) return url_error(url, fmt::format("the database \"{}\" is not a number from 0 to 1000000", path));
    out.db = static_cast<int>(*db);
  }
  return out;
}

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
