// The event store of one MCP session: every message written to one of its SSE
// streams, with the event id it carried, so that a client that lost a stream
// (or was told to reconnect, see Exchange::close_stream) can resume it with
// GET + Last-Event-ID and receive exactly the events it missed.
//
// Event ids are decimal numbers, increasing over the whole session (1, 2, ...),
// so a client never sees an id twice. Each event belongs to one stream: a POST
// reply stream (ids from new_stream(), 1, 2, ...) or the standalone GET stream
// (kStandaloneStream).
//
// Bounded: at most `max_events` events and `max_bytes` bytes (message bytes
// plus kEventOverhead each); the oldest events go first. Eviction is strictly
// oldest-first, so when an event is still stored every later event is too: a
// replay is either complete or refused ("evicted"), never silently partial. An
// event larger than max_bytes on its own evicts everything, itself included.
// Either limit at 0 keeps nothing (ids are still issued).
//
// Thread safety: every member may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace ordinaut::mcp_http {

/// Bounds of one session's event store.
struct EventLimits {
  std::size_t max_events = 1000;
  std::size_t max_bytes = 1024 * 1024;
  bool enabled() const { return max_events > 0 && max_bytes > 0; }
};

/// The stream id of the session's standalone GET stream.
inline constexpr std::uint64_t kStandaloneStream = 0;
/// Bytes counted per event on top of its message (bookkeeping).
inline constexpr std::size_t kEventOverhead = 32;

struct StoredEvent {
  std::uint64_t id = 0;
  std::uint64_t stream = 0;
  std::string data;  ///< the JSON-RPC message; "" for a priming event
};

class EventStore {
 public:
  explicit EventStore(EventLimits limits = {}) : limits_(limits) {}

  /// A new POST stream id (1, 2, ...).
  std::uint64_t new_stream();
  /// Stores one event of `stream`; returns its id. Evicts the oldest events
  /// beyond the limits.
  std::uint64_t append(std::uint64_t stream, std::string data);

  enum class Status { ok, malformed, unknown, evicted };
  struct Replay {
    Status status = Status::unknown;
    std::uint64_t stream = 0;         ///< the stream of the Last-Event-ID (when ok)
    std::vector<StoredEvent> events;  ///< that stream's events after it, oldest first
  };
  /// The events of the stream of `last_event_id` that came after it.
  Replay after(std::string_view last_event_id) const;
  /// A clear reason for a failed Replay, naming the id and the limits.
  std::string explain(const Replay& replay, std::string_view last_event_id) const;

  const EventLimits& limits() const { return limits_; }
  std::size_t size() const;
  std::size_t bytes() const;
  std::uint64_t last_id() const;
  std::uint64_t evicted() const;

 private:
  const EventLimits limits_;
  mutable std::mutex mutex_;
  std::deque<StoredEvent> events_;  // ids increasing
  std::size_t bytes_ = 0;
  std::uint64_t next_id_ = 1;
  std::uint64_t next_stream_ = 1;
  std::uint64_t evicted_ = 0;
};

/// One SSE event: "event: message\nid: <id>\ndata: <json>\n\n".
std::string sse_event(std::uint64_t id, std::string_view json);
/// A priming event: "id: <id>\nretry: <ms>\ndata: \n\n" (empty data: clients skip it).
std::string sse_priming(std::uint64_t id, std::uint64_t retry_ms);

}  // namespace ordinaut::mcp_http
