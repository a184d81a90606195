// JSON-RPC 2.0 envelopes and MCP protocol constants for mcp_http.
//
// Incoming messages are classified strictly (as the official SDK does): an
// object with "jsonrpc":"2.0" and no unknown members, ids that are strings or
// integers, params that are objects. Outgoing messages are built as compact
// JSON text, one line each, so they can go straight into an SSE data: line.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

#include <ordinaut/json.hpp>

namespace ordinaut::mcp_http {

// JSON-RPC and MCP error codes (the SDK's ErrorCode enum).
inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;
inline constexpr int kInternalError = -32603;
inline constexpr int kConnectionError = -32000;  // transport-level "Bad Request"
inline constexpr int kSessionNotFound = -32001;

/// Protocol versions this server speaks, newest first.
inline constexpr std::array<std::string_view, 3> kProtocolVersions = {"2025-11-25", "2025-06-18", "2025-03-26"};
inline constexpr std::string_view kBatchVersion = "2025-03-26";  // the only one with JSON-RPC batches

bool supported_version(std::string_view version);
/// The client's version when supported, otherwise the newest (MCP negotiation).
std::string_view negotiate_version(std::string_view requested);

enum class MessageKind { request, notification, response, invalid };

/// A classified message; pointers refer into the parsed document.
struct Message {
  MessageKind kind = MessageKind::invalid;
  std::string id;      ///< JSON text of the id ("7", "\"abc\""), or "null" when absent or unusable
  std::string method;  ///< requests and notifications
  const JsonValue* params = nullptr;  ///< object or null
  const JsonValue* result = nullptr;  ///< responses
  const JsonValue* error = nullptr;   ///< responses
  std::string problem;  ///< why the message is invalid
};

Message classify(const JsonValue& value);

/// {"jsonrpc":"2.0","id":<id>,"result":<result_json>}
std::string result_message(std::string_view id, std::string_view result_json);
/// {"jsonrpc":"2.0","id":<id>,"error":{"code":..,"message":..,"data":<data_json>?}}
std::string error_message(std::string_view id, int code, std::string_view message, std::string_view data_json = {});
/// {"jsonrpc":"2.0","method":<method>,"params":<params_json>?}
std::string notification_message(std::string_view method, std::string_view params_json = {});
/// {"jsonrpc":"2.0","id":<id>,"method":<method>,"params":<params_json>}
std::string request_message(std::string_view id, std::string_view method, std::string_view params_json);

/// MCP log levels, lowest first; rank is the index.
inline constexpr std::array<std::string_view, 8> kLogLevels = {"debug",    "info",  "notice",    "warning",
                                                               "error",    "critical", "alert", "emergency"};
/// Rank of an MCP level name; nullopt for anything else.
std::optional<int> log_level_rank(std::string_view level);
/// Rank for a ToolContext level: MCP names plus "warn"/"fatal"; unknown → info.
int tool_log_level_rank(std::string_view level);

/// JSON string literal (with quotes) for `text`.
std::string quote(std::string_view text);

/// base64url without padding, and back (nullopt on bad input).
std::string base64url_encode(std::string_view data);
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace ordinaut::mcp_http
