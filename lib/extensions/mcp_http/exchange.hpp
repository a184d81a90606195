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
// Resumability (SEP-1699): every SSE message carries an event id and is kept
// in the session's EventStore under this exchange's stream id. A resumable
// exchange (store enabled, session protocol >= 2025-11-25) starts its stream
// with a priming event (id, `retry`, empty data). close_stream() ends the HTTP
// reply early while the requests keep running; their later messages are only
// stored, and resume() — a GET with Last-Event-ID — replays what the client
// missed and then carries the rest live, until the last response.
//
// Thread safety: every member may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include <ordinaut/http.hpp>

#include "event_store.hpp"

namespace ordinaut::mcp_http {

class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  /// `store` must not be null; `resumable` turns on the priming event and
  /// close_stream(); `retry` is the priming event's reconnection delay.
  Exchange(bool batch, std::chrono::milliseconds keepalive, std::shared_ptr<EventStore> store, bool resumable,
           std::chrono::milliseconds retry);

  /// The stream id of this exchange's events in the session's EventStore.
  std::uint64_t stream_id() const { return stream_; }

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

  /// Ends the HTTP reply now (turning a pending JSON reply into an SSE stream
  /// that holds just the priming event), while the requests keep running:
  /// what they send later is stored for a GET with Last-Event-ID. False, doing
  /// nothing, when the exchange is not resumable or every request is answered.
  bool close_stream();

  /// Waits until every expected request is answered (→ JSON) or something was
  /// emitted or the keep-alive interval passed (→ SSE). REQUIRES:
  /// has_requests(); called once, by the HTTP handler.
  Response finish();

  /// A GET with Last-Event-ID naming an event of this stream: the stored
  /// events after it, then the live ones until the last response. A writer
  /// still attached (an earlier connection) is detached. Status ok fills
  /// `out`; otherwise see EventStore::Status.
  EventStore::Status resume(std::string_view last_event_id, Response& out);

 private:
  // REQUIRES: mutex_ held.
  void switch_to_sse_locked();
  void enqueue_locked(std::string message);
  bool superseded_locked(std::uint64_t generation) const { return detached_ || generation != writer_generation_; }
  void stream(StreamSink& sink, std::uint64_t generation, const std::string& first);

  const bool batch_;
  const std::chrono::milliseconds keepalive_;
  const std::shared_ptr<EventStore> store_;
  const bool resumable_;
  const std::chrono::milliseconds retry_;
  const std::uint64_t stream_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::string> queue_;  // raw JSON before the switch to SSE, SSE events after
  std::string priming_;            // the priming event, once streamed_ (resumable only)
  int expected_ = 0;
  int outstanding_ = 0;
  bool streamed_ = false;
  bool over_ = false;
  bool gone_ = false;
  bool detached_ = false;  // no writer: close_stream() ran and no resume() since
  std::uint64_t writer_generation_ = 0;
};

/// How often streams check StreamSink::is_open() while nothing happens, so a
/// vanished client is noticed quickly by sinks that watch the socket.
inline constexpr std::chrono::milliseconds kPollSlice{250};

/// A stored event as SSE: a message event, or a priming event for empty data.
std::string sse_stored(const StoredEvent& event);

}  // namespace ordinaut::mcp_http
