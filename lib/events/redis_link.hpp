// Connecting to Redis, the shared connection state, and the pool of
// publisher connections (internal, Redis bus).
//
// Owns: the URL and options of the bus; whether Redis is reachable, the
// reconnect count and backoff state after failures, the last error; the
// connection "generation" (bumped on every failure, so pooled connections and
// cached facts of an earlier connection are dropped); idle publisher
// connections.
// Calls: hiredis through redis_wire.hpp only.
//
// Locking: Link and Pool are safe for concurrent use; each holds its own
// mutex for a few field updates only, never across I/O. A Context is handed
// out to one thread at a time.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "events/redis_wire.hpp"
#include "ordinaut/json.hpp"
#include "ordinaut/redis_bus.hpp"
#include "ordinaut/result.hpp"

namespace ordinaut::detail::redis {

/// A random delay up to backoff_initial × 2^failures, capped at backoff_max
/// ("full jitter").
milliseconds backoff_delay(const RedisBusOptions& o, int failures);
/// `bytes` random bytes as lower-case hex.
std::string random_hex(int bytes);

class Link {
 public:
  Link(const RedisBusOptions& options, RedisUrl url) : options_(options), url_(std::move(url)) {}

  const RedisUrl& url() const { return url_; }
  const RedisBusOptions& options() const { return options_; }

  /// Connects, authenticates and selects the database. Error codes:
  /// "bus_unavailable" (network), "redis_auth_failed", "redis_error".
  Result<Context> connect(milliseconds read_timeout) const;

  /// Records a command that succeeded on a fresh or live connection.
  void success();
  /// Records an I/O failure: disconnected, backoff starts, generation bumps.
  void failure(const std::string& error);
  /// While in backoff after a failure, callers fail fast instead of connecting.
  std::optional<Error> backoff_error() const;

  std::uint64_t generation() const { return generation_.load(); }
  /// Adds connected, reconnects, reconnect_attempts, backoff_ms, last_error,
  /// last_error_time to `doc`.
  void describe(Json& doc) const;
  bool connected() const;

  /// Marks the start and end of a liveness probe (the monitor's PING); a probe
  /// outstanding for longer than kProbeOverdue means Redis stopped answering
  /// (a stopped process, a stalled network) before any timeout says so.
  void probe_started();
  void probe_finished();
  static constexpr milliseconds kProbeOverdue{500};

  /// Whether Redis is reachable and answering, and since when (epoch ms) it
  /// is not (0 while it is).
  struct Availability {
    bool up = true;
    std::int64_t down_since_ms = 0;
    std::string reason;
  };
  Availability availability() const;

 private:
  const RedisBusOptions options_;
  const RedisUrl url_;
  mutable std::mutex mutex_;  // the fields below except generation_
  bool connected_ = false;
  bool failed_before_ = false;
  std::uint64_t reconnects_ = 0;
  std::string last_error_;
  std::int64_t last_error_ms_ = 0;
  int failures_ = 0;                // consecutive
  std::uint64_t attempts_ = 0;      // failed connections and commands, all told
  std::int64_t down_since_ms_ = 0;  // first failure since the last success; 0 when up
  Clock::time_point retry_at_{};
  Clock::time_point probe_started_{};  // {} when no probe is outstanding
  std::int64_t probe_started_ms_ = 0;
  std::atomic<std::uint64_t> generation_{0};
};

/// A pooled connection and the Link generation it was made in.
struct Lease {
  Context context;
  std::uint64_t generation = 0;
};

/// Idle publisher connections (at most 64 kept).
class Pool {
 public:
  explicit Pool(Link& link) : link_(link) {}

  /// An idle connection of the current generation that still looks alive, or
  /// a new one; fails fast while the Link is in backoff.
  Result<Lease> acquire();
  /// Returns a connection that is in a clean state (every reply read).
  void release(Lease lease);
  void clear();

 private:
  Link& link_;
  std::mutex mutex_;  // idle_
  std::vector<Lease> idle_;
};

}  // namespace ordinaut::detail::redis
