// ToolContext for a tools/call made over MCP: a tool's log(), progress() and
// ask_client() become notifications/message, notifications/progress and
// server-to-client requests on the call's own SSE stream; cancelled() turns
// true on notifications/cancelled, on a vanished client and on session end;
// close_stream() ends the call's stream early for the client to resume.
//
// Thread safety: used by the one worker thread running the call; the state it
// reads is shared with request handlers through atomics and locks.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <ordinaut/tools.hpp>

#include "session.hpp"

namespace ordinaut::mcp_http {

class McpToolContext final : public ToolContext {
 public:
  McpToolContext(std::shared_ptr<Session> session, std::shared_ptr<CallState> call,
                 std::chrono::milliseconds max_ask_timeout)
      : session_(std::move(session)), call_(std::move(call)), max_ask_timeout_(max_ask_timeout) {}

  void log(std::string_view level, std::string_view message) override;
  void progress(double progress, double total, std::string_view message) override;
  /// Errors: "unsupported" (client lacks the capability), "cancelled",
  /// "timeout", "unavailable" (the call's stream is gone), "client_error".
  Result<Json> ask_client(std::string_view method, const JsonValue& params,
                          std::chrono::milliseconds timeout) override;
  bool cancelled() const override;
  /// Ends the call's POST stream early (Exchange::close_stream).
  bool close_stream() override;

 private:
  std::shared_ptr<Session> session_;
  std::shared_ptr<CallState> call_;
  std::chrono::milliseconds max_ask_timeout_;
};

}  // namespace ordinaut::mcp_http
