// One POST to the MCP endpoint: the messages the server sends back for it.
//
// Requests in the POST are answered here (responses), and tool calls may emit
// notifications and server-to-client requests for the same POST. If nothing
// but responses is produced, the reply is plain JSON (one object, or an array
// for a batch); as soon as anything else is emitted the reply becomes an SSE
// stream that carries every message in order and closes after the last
// response. A client that goes away closes the exchange; running calls see
// that as cancellation.
//
// Thread safety: every member may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include <ordinaut/http.hpp>

namespace ordinaut::mcp_http {

class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(bool batch, std::chrono::milliseconds keepalive) : batch_(batch), keepalive_(keepalive) {}

  /// Registers one request that will get respond() or abandon().
  void expect();
  /// The response to one expected request.
  void respond(std::string message);
  /// One expected request ends without a response (it was cancelled).
  void abandon();
  /// A notification or request for the client; switches the reply to SSE.
  /// False (and dropped) once the reply is over.
  bool emit(std::string message);
  /// True once the client disconnected from the stream.
  bool client_gone() const;
  /// True when at least one request was expected.
  bool has_requests() const;

  /// Waits until every expected request is answered (→ JSON) or something was
  /// emitted or the keep-alive interval passed (→ SSE). REQUIRES:
  /// has_requests(); called once, by the HTTP handler.
  Response finish();

 private:
  void stream(StreamSink& sink);

  const bool batch_;
  const std::chrono::milliseconds keepalive_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::string> queue_;
  int expected_ = 0;
  int outstanding_ = 0;
  bool streamed_ = false;
  bool over_ = false;
  bool gone_ = false;
};

/// How often streams check StreamSink::is_open() while nothing happens, so a
/// vanished client is noticed quickly by sinks that watch the socket.
inline constexpr std::chrono::milliseconds kPollSlice{250};

/// "event: message\ndata: <json>\n\n"
std::string sse_message(std::string_view json);

}  // namespace ordinaut::mcp_http
