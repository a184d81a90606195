#include "config.hpp"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <stdexcept>
#include <string_view>

#include <fmt/format.h>

namespace ordinaut::mcp_http {

namespace {

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string item(text.substr(start, comma - start));
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back()))) item.pop_back();
    std::size_t first = 0;
    while (first < item.size() && std::isspace(static_cast<unsigned char>(item[first]))) ++first;
    item.erase(0, first);
    if (!item.empty()) out.push_back(std::move(item));
    start = comma + 1;
  }
  return out;
}

std::size_t number(const char* name, std::size_t fallback, std::size_t min, std::size_t max) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  errno = 0;
  unsigned long long n = std::strtoull(v, &end, 10);
  if (*end != '\0' || errno != 0 || n < min || n > max || *v == '-') {
    throw std::invalid_argument(fmt::format("{}=\"{}\" must be a whole number from {} to {}", name, v, min, max));
  }
  return static_cast<std::size_t>(n);
}

}  // namespace

Config Config::from_environment() {
  Config c;
  if (const char* v = std::getenv("ORDINAUT_MCP_ALLOWED_HOSTS")) {
    for (auto& h : split_list(v)) {
      if (h == "*") {
        c.any_host = true;
        continue;
      }
      for (auto& ch : h) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      c.allowed_hosts.push_back(std::move(h));
    }
  }
  if (const char* v = std::getenv("ORDINAUT_MCP_SHORT_NAMES")) {
    for (auto& id : split_list(v)) {
      if (id == "*") {
        c.short_names_all = true;
      } else {
        c.short_name_extensions.push_back(std::move(id));
      }
    }
  }
  c.page_size = number("ORDINAUT_MCP_PAGE_SIZE", c.page_size, 1, 100000);
  c.max_sessions = number("ORDINAUT_MCP_MAX_SESSIONS", c.max_sessions, 1, 10000000);
  c.max_sessions_per_client = number("ORDINAUT_MCP_MAX_SESSIONS_PER_CLIENT", c.max_sessions_per_client, 1, 10000000);
  c.max_client_info = number("ORDINAUT_MCP_CLIENT_INFO_MAX_BYTES", c.max_client_info, 1, 1024 * 1024);
  c.session_idle = std::chrono::seconds(number("ORDINAUT_MCP_SESSION_IDLE_S", 3600, 1, 30 * 24 * 3600));
  c.keepalive = std::chrono::milliseconds(number("ORDINAUT_MCP_KEEPALIVE_MS", 10000, 50, 600000));
  c.max_workers = number("ORDINAUT_MCP_MAX_WORKERS", c.max_workers, 1, 4096);
  c.event_limits.max_events = number("ORDINAUT_MCP_EVENT_STORE_EVENTS", c.event_limits.max_events, 0, 1000000);
  c.event_limits.max_bytes =
      number("ORDINAUT_MCP_EVENT_STORE_BYTES", c.event_limits.max_bytes, 0, std::size_t{1} << 30);
  c.sse_retry = std::chrono::milliseconds(number("ORDINAUT_MCP_SSE_RETRY_MS", 1000, 0, 600000));
  return c;
}

}  // namespace ordinaut::mcp_http
