// mcp_http settings, read once from the environment at setup().
//
//   ORDINAUT_MCP_ALLOWED_HOSTS    comma list of host names accepted in Host (and
//                                 Origin) besides localhost, 127.0.0.1 and [::1];
//                                 "*" turns the DNS-rebinding check off (only
//                                 behind a proxy that checks Host itself)
//   ORDINAUT_MCP_SHORT_NAMES      comma list of extension ids (or "*") whose tools
//                                 MCP clients see without the "ext.{id}." prefix
//                                 when that name is unambiguous
//   ORDINAUT_MCP_PAGE_SIZE        tools per tools/list page (default 100)
//   ORDINAUT_MCP_MAX_SESSIONS     open sessions at most (default 10000); when full, the
//                                 least recently used idle session makes room
//   ORDINAUT_MCP_MAX_SESSIONS_PER_CLIENT  sessions per client address at most
//                                 (default 100); beyond, that address's own least
//                                 recently used idle session makes room
//   ORDINAUT_MCP_CLIENT_INFO_MAX_BYTES  longest clientInfo name, version and title
//                                 accepted by initialize (default 256)
//   ORDINAUT_MCP_SESSION_IDLE_S   idle seconds before a session expires (default 3600)
//   ORDINAUT_MCP_KEEPALIVE_MS     SSE keep-alive comment interval (default 10000);
//                                 with a sink that cannot see the socket close,
//                                 also how fast a vanished client is noticed
//   ORDINAUT_MCP_MAX_WORKERS      threads running tool calls at most (default 64)
//   ORDINAUT_MCP_EVENT_STORE_EVENTS  SSE events kept per session for resumption
//                                 with Last-Event-ID (default 1000; 0 = none)
//   ORDINAUT_MCP_EVENT_STORE_BYTES   bytes of SSE events kept per session
//                                 (default 1048576; 0 = none). Either at 0 turns
//                                 resumption off: no priming events, and a GET with
//                                 Last-Event-ID is refused
//   ORDINAUT_MCP_SSE_RETRY_MS     the `retry` of priming events: how long a client
//                                 waits before it reconnects (default 1000)
//
// A malformed value is a setup error naming the variable (the extension then
// reports it in /ext/status instead of running with a surprise).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "event_store.hpp"

namespace ordinaut::mcp_http {

struct Config {
  std::vector<std::string> allowed_hosts;  ///< extra names, lower case, without port
  bool any_host = false;
  std::vector<std::string> short_name_extensions;
  bool short_names_all = false;
  std::size_t page_size = 100;
  std::size_t max_sessions = 10000;
  std::size_t max_sessions_per_client = 100;
  std::size_t max_client_info = 256;  ///< bytes of clientInfo.name/version/title
  std::chrono::seconds session_idle{3600};
  std::chrono::milliseconds keepalive{10000};
  std::size_t max_workers = 64;
  EventLimits event_limits{};  ///< per session
  std::chrono::milliseconds sse_retry{1000};
  std::size_t max_body = 4 * 1024 * 1024;  ///< the SDK's limit; the host may cap lower
  std::size_t max_batch = 100;
  std::chrono::milliseconds max_ask_timeout{10 * 60 * 1000};

  /// Throws std::invalid_argument naming the variable on a malformed value.
  static Config from_environment();
};

}  // namespace ordinaut::mcp_http
