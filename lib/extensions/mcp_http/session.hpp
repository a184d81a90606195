// MCP sessions: created by initialize, named by an unguessable Mcp-Session-Id,
// ended by DELETE or after a long idle time.
//
// A session remembers what the client negotiated (version, capabilities, log
// level), its tool calls in flight (so notifications/cancelled can reach them),
// its questions to the client awaiting an answer (sampling, elicitation), and
// its standalone GET stream, which carries notifications/tools/list_changed
// and the notifications queued with notify() (resources and prompts
// list_changed, resources/updated), and its event store: every SSE message of
// its streams, for resumption with Last-Event-ID (event_store.hpp), plus the
// POST streams still running.
//
// Thread safety: Session and SessionStore are safe for concurrent use.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <ordinaut/http.hpp>
#include <ordinaut/json.hpp>

#include "event_store.hpp"
#include "exchange.hpp"

namespace ordinaut::mcp_http {

struct ClientCapabilities {
  bool sampling = false;
  bool elicitation = false;
  bool roots = false;
};

/// One tools/call in flight.
struct CallState {
  std::shared_ptr<Exchange> exchange;
  std::string id;              ///< JSON text of the request id
  std::string progress_token;  ///< JSON text of _meta.progressToken, or ""
  std::string tool;            ///< registry name
  std::atomic<bool> cancelled{false};
  std::atomic<bool> settled{false};
  /// True for the one caller that gets to answer (or abandon) the request.
  bool settle() { return !settled.exchange(true); }
};

/// A request sent to the client, waiting for its response.
struct PendingAsk {
  std::mutex mutex;
  std::condition_variable answered;
  bool done = false;
  bool ok = false;
  std::string result_json;  ///< when ok
  int error_code = 0;       ///< when !ok
  std::string error_text;
};

class Session {
 public:
  Session(std::string id, std::string version, ClientCapabilities caps, std::string client_name,
          std::string client_address = {}, EventLimits event_limits = {});

  const std::string& id() const { return id_; }
  const std::string& protocol_version() const { return version_; }
  const ClientCapabilities& capabilities() const { return caps_; }
  const std::string& client_name() const { return client_name_; }
  /// Request::remote_addr of the initialize request ("" when unknown).
  const std::string& client_address() const { return client_address_; }

  void touch();
  std::chrono::milliseconds idle_for() const;
  /// Orders sessions by last use (larger = more recent); unlike idle_for(),
  /// never ties.
  std::uint64_t last_use() const { return last_use_.load(std::memory_order_relaxed); }
  /// True while a GET stream is open or a call runs: never expired then.
  bool busy() const;
  void set_initialized() { initialized_.store(true); }
  bool initialized() const { return initialized_.load(); }
  int min_log_rank() const { return min_log_rank_.load(std::memory_order_relaxed); }
  void set_min_log_rank(int rank) { min_log_rank_.store(rank, std::memory_order_relaxed); }

  /// False when a call with the same request id is already running.
  bool add_call(const std::shared_ptr<CallState>& call);
  void remove_call(const std::string& id);
  std::shared_ptr<CallState> find_call(const std::string& id) const;

  /// A new server-to-client request id (JSON text) and its waiter.
  std::pair<std::string, std::shared_ptr<PendingAsk>> add_ask();
  void remove_ask(const std::string& id);
  /// Delivers the client's response; false when nothing waits for that id.
  bool resolve_ask(const std::string& id, bool ok, std::string result_json, int error_code, std::string error_text);

  /// The session's event store (never null).
  const std::shared_ptr<EventStore>& events() const { return events_; }
  /// True when POST streams start with a priming event and may be closed
  /// early: the store keeps events and the client speaks 2025-11-25 or later.
  bool resumable() const;
  /// Remembers a POST exchange, so that a GET with Last-Event-ID can resume it.
  void add_exchange(const std::shared_ptr<Exchange>& exchange);
  /// The exchange of a stream id, while it lives.
  std::shared_ptr<Exchange> find_exchange(std::uint64_t stream) const;

  /// Claims the standalone GET stream: a token, or 0 when one is already open.
  std::uint64_t claim_stream();
  /// Runs the claimed stream until the client leaves or the session ends,
  /// writing `replay` (stored events of this stream, for a resume) first.
  void run_stream(StreamSink& sink, std::chrono::milliseconds keepalive, std::vector<StoredEvent> replay = {});
  /// Gives the claim back (also when the stream never ran); no-op for a stale token.
  void release_stream(std::uint64_t token);
  void notify_tools_changed();
  /// Queues a notification (JSON-RPC message text) for the standalone GET
  /// stream; dropped when no stream is open, like notify_tools_changed(). A
  /// message equal to one still queued is not queued again; beyond
  /// kMaxQueuedNotifications the oldest is dropped.
  void notify(std::string message);
  /// Runs `hook` once when the session ends (at once when it already has);
  /// e.g. to drop the session's resource subscriptions.
  void on_close(std::function<void()> hook);
  static constexpr std::size_t kMaxQueuedNotifications = 256;

  /// Ends the session: stream closed, calls cancelled, questions failed.
  void close();
  bool closed() const { return closed_.load(); }

 private:
  const std::string id_;
  const std::string version_;
  const ClientCapabilities caps_;
  const std::string client_name_;
  const std::string client_address_;
  std::atomic<bool> initialized_{false};
  std::atomic<bool> closed_{false};
  std::atomic<int> min_log_rank_{0};  // the SDK sends every level until setLevel
  std::atomic<std::int64_t> last_active_ms_;
  std::atomic<std::uint64_t> last_use_;

  mutable std::mutex mutex_;
  std::condition_variable stream_wakeup_;
  bool stream_open_ = false;
  std::uint64_t stream_token_ = 0;
  bool tools_changed_ = false;
  std::deque<std::string> notifications_;
  std::vector<std::function<void()>> close_hooks_;
  std::unordered_map<std::string, std::shared_ptr<CallState>> calls_;
  std::unordered_map<std::string, std::shared_ptr<PendingAsk>> asks_;
  std::uint64_t next_ask_ = 0;
  const std::shared_ptr<EventStore> events_;
  std::unordered_map<std::uint64_t, std::weak_ptr<Exchange>> exchanges_;
};

/// The sessions of one mcp_http instance, bounded in two ways:
///  - at most `max_sessions` in all: when full, expired sessions go first, then
///    the least recently used idle one (no stream open, no call running), so a
///    new client always gets a session unless every session is busy;
///  - at most `max_per_client` per client address: beyond it, that address's
///    own least recently used idle session is evicted, so one address cannot
///    push everybody else out. Sessions without an address ("") have no
///    per-address cap.
/// An evicted session's client gets 404 on its next request and initializes
/// again, as MCP prescribes for an unknown session.
class SessionStore {
 public:
  SessionStore(std::size_t max_sessions, std::chrono::milliseconds idle_limit,
               std::size_t max_per_client = static_cast<std::size_t>(-1), EventLimits event_limits = {})
      : max_sessions_(max_sessions), max_per_client_(max_per_client), idle_limit_(idle_limit),
        event_limits_(event_limits) {}

  /// A new session, or null when the store (or the address's share) is full of
  /// busy sessions.
  std::shared_ptr<Session> create(std::string version, ClientCapabilities caps, std::string client_name,
                                  std::string client_address = {});
  std::shared_ptr<Session> find(std::string_view id) const;
  /// Closes and forgets a session; false when unknown.
  bool remove(std::string_view id);
  void for_each(const std::function<void(Session&)>& fn) const;
  /// Closes every session (shutdown).
  void close_all();
  std::size_t size() const;
  /// Sessions of one client address.
  std::size_t size_of(const std::string& client_address) const;
  /// Sessions evicted to make room so far.
  std::uint64_t evicted() const { return evicted_.load(std::memory_order_relaxed); }
  /// Expires idle sessions; returns how many. create() also sweeps, at most
  /// once a minute, so no background thread is needed.
  std::size_t sweep();

 private:
  using Map = std::unordered_map<std::string, std::shared_ptr<Session>>;
  // REQUIRES: mutex_ held. Removes the least recently used idle session (of
  // `address` only, when given); null when none is idle.
  std::shared_ptr<Session> evict_locked(const std::string* address);
  void forget_locked(Map::iterator it);

  const std::size_t max_sessions_;
  const std::size_t max_per_client_;
  const std::chrono::milliseconds idle_limit_;
  const EventLimits event_limits_;
  mutable std::shared_mutex mutex_;
  Map sessions_;
  std::unordered_map<std::string, std::size_t> per_client_;  // address → sessions; no entry for ""
  std::atomic<std::int64_t> last_sweep_ms_{0};
  std::atomic<std::uint64_t> evicted_{0};
};

}  // namespace ordinaut::mcp_http
