// Subscriptions of the Redis bus (internal): their state, and the worker loop
// that reads their streams through a consumer group, delivers, acknowledges,
// reclaims what dead consumers left pending, and keeps their figures.
//
// Owns: per subscription its connection, the streams it joined and its group
// on each (discovery, and re-making groups after Redis lost them), the
// at-least-once delivery with retries, XACK, XPENDING/XCLAIM reclaim, and the
// pending/lag figures (XINFO GROUPS).
// Calls: Link (connect, success, failure), Pool (only in cleanup, after the
// worker's own connection is gone), hiredis through redis_wire.hpp, and the
// subscription's handler (on the worker thread, with no lock held).
//
// Locking, per subscription:
//  - `streams`, `last_handled`, `rejection_log` and the worker's Context
//    belong to the worker thread (and to subscribe() before it starts);
//  - conn_mutex guards `active` and `blocked` and is the mutex of `wake`; stop
//    takes it to shut a blocked read's socket down;
//  - stats_mutex guards stats, last_error, connected, reconnects and the read
//    state (last_read_ms, unreadable_since_ms, read_started);
//  - counters are atomics.
// No lock is held across I/O or a handler call; the two mutexes are never held
// together.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "events/redis_link.hpp"
#include "ordinaut/events.hpp"
#include "ordinaut/logging.hpp"

namespace ordinaut::detail::redis {

/// One stream of a subscription, as XINFO GROUPS last described its group.
struct StreamStats {
  std::string stream;
  std::string topic;
  std::int64_t pending = 0;
  std::int64_t lag = -1;  // -1: unknown (Redis < 7)
  std::string last_delivered_id;
};

struct Totals {
  std::atomic<std::uint64_t> delivered{0}, failed{0}, retried{0}, reclaimed{0}, dropped{0};
  std::atomic<std::uint64_t> group_recreated{0};
  // Entries never delivered (acknowledged at once), by reason.
  std::atomic<std::uint64_t> rejected_invalid_json{0}, rejected_no_payload{0};
};

struct RedisSubscription {
  std::uint64_t id = 0;
  std::string subscriber;
  std::string pattern;
  std::string group_label;  // as the subscriber named it; "" for a private group
  std::string group;        // the Redis consumer group
  std::string consumer;
  std::string start_id;  // where groups on newly found streams begin
  EventHandler handler;
  std::thread worker;
  std::atomic<bool> stop{false};

  // Worker-only: streams joined (key → topic); the last entry handled on each
  // (where a lost group is recreated); when a rejected entry of a stream was
  // last logged, and how many were not logged since.
  std::map<std::string, std::string> streams;
  std::map<std::string, std::string> last_handled;
  std::map<std::string, std::pair<Clock::time_point, std::uint64_t>> rejection_log;

  // The worker's connection, for stop(): shut down only while blocked reading.
  std::mutex conn_mutex;
  redisContext* active = nullptr;
  bool blocked = false;
  std::condition_variable wake;  // interrupts pauses (backoff, retry, idle)

  Totals totals;
  mutable std::mutex stats_mutex;
  std::vector<StreamStats> stats;
  std::string last_error;
  bool connected = false;
  bool last_connect_failed = false;
  std::uint64_t reconnects = 0;
  // Whether it can read: when the last read answered (epoch ms), since when
  // reads fail (0 while they succeed), and the read now waiting for Redis.
  std::int64_t last_read_ms = 0;
  std::int64_t unreadable_since_ms = 0;
  Clock::time_point read_started{};  // {} when no read is outstanding
  std::int64_t read_started_ms = 0;

  bool exact() const { return pattern != "*" && !pattern.ends_with(".*"); }
};

/// Runs subscriptions. One per bus; stateless apart from references to the
/// bus's options, connection state and totals.
class SubscriptionRunner {
 public:
  SubscriptionRunner(const RedisBusOptions& options, Link& link, Pool& pool, Totals& totals);

  /// How discover() starts the groups it creates.
  /// initial: in subscribe(); streams that exist now start at their end ("$").
  /// later: streams found since start at the subscription's time (start_id).
  /// rebuild: after a reconnect or NOGROUP; a stream already joined whose group
  /// is gone was recreated (Redis restarted empty) and is read from "0".
  enum class Discovery { initial, later, rebuild };

  /// Joins the streams that match the subscription (creating its group on
  /// each); runs on `c`, the caller's connection. Returns an error on I/O
  /// failure ("bus_unavailable"); a refusal by Redis is recorded in last_error.
  // REQUIRES: the caller owns s.streams (the worker, or subscribe() before it
  // starts the worker).
  std::optional<Error> discover(RedisSubscription& s, redisContext* c, Discovery mode);

  /// The worker thread's body: reads and delivers until s.stop, then leaves
  /// or destroys the group (see cleanup).
  void work(RedisSubscription& s);

  /// Asks the worker to stop and interrupts a blocked read or a pause; does
  /// not wait for it.
  static void request_stop(RedisSubscription& s);

 private:
  bool deliver(RedisSubscription& s, const std::string& key, std::string_view id, const redisReply* fields,
               long long earlier_deliveries);
  bool handle_entries(RedisSubscription& s, redisContext* c, const std::string& key, const redisReply* entries,
                      const std::map<std::string, long long>* deliveries = nullptr);
  std::optional<bool> read(RedisSubscription& s, redisContext* c, bool pending, bool& need_setup);
  bool reclaim(RedisSubscription& s, redisContext* c);
  bool refresh_stats(RedisSubscription& s, redisContext* c);
  void cleanup(RedisSubscription& s);

  /// Counts, acknowledges (by returning) and logs an entry that is no event.
  void reject(RedisSubscription& s, const std::string& key, std::string_view id, std::string_view reason,
              const std::string& detail);
  void log(LogLevel level, std::string_view event, const std::string& message) const;

  static void set_error(RedisSubscription& s, std::string message);
  static void set_connected(RedisSubscription& s, bool connected);
  /// Records a read that answered (ok) or failed.
  static void read_outcome(RedisSubscription& s, bool ok);
  /// Sleeps up to `d`, or until the subscription is stopped.
  static void pause(RedisSubscription& s, milliseconds d);

  const RedisBusOptions& options_;
  Link& link_;
  Pool& pool_;
  Totals& totals_;  // the bus's, beside each subscription's own
  const std::string streams_prefix_, registry_key_;
  LogSink log_;
};

}  // namespace ordinaut::detail::redis
