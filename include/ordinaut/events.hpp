// Events: publish/subscribe between extensions, the host and other processes.
//
// An Event carries an id, a topic ("task.completed"), the id of its source
// (stamped by the host from the publishing extension, so it cannot be forged),
// the time it was published and a JSON payload. Topic patterns are an exact
// topic, "prefix.*" (any topic below prefix) or "*" (everything).
//
// Extensions never see the EventBus itself: with EVENTS_PUB they receive an
// EventPublisher bound to their id, with EVENTS_SUB an EventSubscriber. The
// host publishes with source "core" (ExtensionHost::publish).
//
// Delivery is at least once: a handler that throws is retried in place (the
// subscriber's later events wait), with a doubling pause, up to max_attempts
// deliveries; then the event is counted "failed" and skipped. The Redis bus
// may also deliver an event again after a connection loss or when it reclaims
// the pending events of a dead consumer (see ordinaut/redis_bus.hpp).
//
// Thread safety: every class here is safe for concurrent use. Handlers run on
// the bus's worker threads, never on the publisher's.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ordinaut/json.hpp"
#include "ordinaut/result.hpp"
#include "ordinaut/version.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

/// One event as handlers receive it.
struct Event {
  /// Ordered and unique within its topic, so (topic, id) names an event; the
  /// Redis bus uses the stream entry id ("1718000000000-0"), which two topics
  /// may share.
  std::string id;
  std::string topic;   ///< what it was published on, e.g. "shop.order_placed"
  std::string source;  ///< publishing extension id, or "core" for the host
  std::int64_t time_ms = 0;  ///< milliseconds since the Unix epoch
  std::shared_ptr<const Json> payload;  ///< the published JSON value, shared by every handler

  /// {"id","topic","source","time","payload"} as JSON text; time is RFC 3339.
  std::string to_json() const;
};

/// Called once per delivered event. Throwing marks the delivery failed; the bus
/// counts it and retries as its documentation says.
using EventHandler = std::function<void(const Event&)>;

/// Options of a subscription.
struct SubscribeOptions {
  /// Subscribers sharing a group share its events (each event to one of them);
  /// different groups, and subscribers without a group, each get every event.
  /// A group belongs to one subscriber (extension id) and one pattern, so an
  /// extension cannot join, and take events from, another extension's group;
  /// the same extension in several processes on one Redis shares its groups.
  std::string group;
  /// Name of this consumer within its group; generated when empty.
  std::string consumer;
};

/// True when `topic` matches `pattern` ("a.b", "a.*", "*").
bool topic_matches(std::string_view pattern, std::string_view topic) noexcept;
/// Checks a topic to publish: 1..200 characters of [A-Za-z0-9_.:-], no '*'.
Result<void> validate_topic(std::string_view topic);
/// Checks a subscription pattern: a valid topic, "prefix.*" or "*".
Result<void> validate_pattern(std::string_view pattern);

/// One event of a batch. Topic and payload are borrowed for the call only.
struct EventDraft {
  std::string_view topic;    ///< checked as validate_topic() does
  const JsonValue& payload;  ///< any JSON value
};

/// The transport. Implemented by the in-memory bus (default) and the Redis
/// Streams bus; a host may provide its own.
///
/// Error codes: "invalid_topic", "invalid_pattern", "invalid_handler",
/// "bus_stopped" (after shutdown()), "bus_unavailable" (Redis unreachable).
class EventBus {
 public:
  virtual ~EventBus() = default;
  /// Publishes and returns the event id. `source` is trusted: only the host
  /// calls this (EventPublisher stamps it).
  virtual Result<std::string> publish(std::string_view topic, std::string_view source,
                                      const JsonValue& payload) = 0;
  /// Publishes several events in one go (the Redis bus pipelines them) and
  /// returns their ids in order. Every topic is checked first: an invalid one
  /// publishes nothing. On a transport error events before the failing one may
  /// have been published. The default calls publish() for each.
  virtual Result<std::vector<std::string>> publish_batch(std::string_view source,
                                                         const std::vector<EventDraft>& events);
  /// Subscribes `handler` on behalf of `subscriber` (an extension id); returns
  /// a subscription id for unsubscribe().
  virtual Result<std::uint64_t> subscribe(std::string_view subscriber, std::string_view pattern,
                                          EventHandler handler, const SubscribeOptions& options) = 0;
  /// Cancels one subscription; no effect for an unknown id. Returns once its
  /// handler is no longer called.
  virtual void unsubscribe(std::uint64_t subscription_id) = 0;
  /// Cancels every subscription of `subscriber`.
  virtual void unsubscribe_all(std::string_view subscriber) = 0;
  /// The bus's own state: at least {"kind": "memory"|"redis", "connected":
  /// bool, "published", "delivered", "failed", "retried", "dropped",
  /// "subscriptions"}; the Redis bus adds url, reconnects, last_error.
  virtual Json health() const = 0;
  /// One subscriber's subscriptions: an array of {"id", "pattern", "group",
  /// "consumer", "pending" (not yet handled), "lag", "delivered", "failed",
  /// "retried", "dropped", "last_error"}; the Redis bus adds its streams with
  /// the group's pending count and lag each.
  virtual Json subscriber_health(std::string_view subscriber) const = 0;
  /// Stops accepting publishes and subscriptions and stops the workers, after
  /// the drain the bus documents; undelivered events are counted "dropped".
  /// Idempotent.
  virtual void shutdown() = 0;
};

/// A cancellable subscription handle. Dropping it does not cancel the
/// subscription; the host cancels all of an extension's subscriptions when it
/// shuts the extension down.
class Subscription {
 public:
  Subscription() = default;
  /// Handle of subscription `id` on `bus` (made by EventSubscriber::subscribe).
  Subscription(std::weak_ptr<EventBus> bus, std::uint64_t id) : bus_(std::move(bus)), id_(id) {}
  /// The bus's subscription id; 0 for a default-constructed handle.
  std::uint64_t id() const noexcept { return id_; }
  /// Cancels the subscription (EventBus::unsubscribe); no effect when the bus
  /// is gone or it was cancelled already.
  void cancel();

 private:
  std::weak_ptr<EventBus> bus_;
  std::uint64_t id_ = 0;
};

/// Publishing handle of one extension (given only with EVENTS_PUB).
class EventPublisher {
 public:
  /// Publishes on `bus` as `source` (the host makes one per extension).
  EventPublisher(std::shared_ptr<EventBus> bus, std::string source)
      : bus_(std::move(bus)), source_(std::move(source)) {}
  /// Publishes with this extension as source; returns the event id.
  Result<std::string> publish(std::string_view topic, const JsonValue& payload) const;
  /// EventBus::publish_batch with this extension as source.
  Result<std::vector<std::string>> publish_batch(const std::vector<EventDraft>& events) const;

 private:
  std::shared_ptr<EventBus> bus_;
  std::string source_;
};

/// Subscribing handle of one extension (given only with EVENTS_SUB).
class EventSubscriber {
 public:
  /// Subscribes on `bus` as `subscriber` (the host makes one per extension).
  EventSubscriber(std::shared_ptr<EventBus> bus, std::string subscriber)
      : bus_(std::move(bus)), subscriber_(std::move(subscriber)) {}
  /// Calls `handler` for every event whose topic matches `pattern` ("a.b",
  /// "a.*", "*"). Errors: "invalid_pattern", "invalid_handler", "bus_stopped".
  Result<Subscription> subscribe(std::string_view pattern, EventHandler handler,
                                 const SubscribeOptions& options = {}) const;

 private:
  std::shared_ptr<EventBus> bus_;
  std::string subscriber_;
};

/// Options of the in-memory bus.
struct MemoryBusOptions {
  /// Events queued per subscription (or per group) before the oldest is dropped.
  std::size_t queue_capacity = 65536;
  /// Deliveries tried per event and subscriber before it is counted failed.
  int max_attempts = 3;
  /// Pause after the first failed attempt; it doubles after each further one.
  std::chrono::milliseconds retry_delay{10};
  /// How long shutdown() lets the workers deliver what is already queued.
  std::chrono::milliseconds drain_timeout{2000};
  /// How often a worker whose queue ran empty looks for new events, for up to
  /// spin_before_sleep, before it sleeps until a publisher wakes it. In a busy
  /// stream an event may wait up to this long; longer lets the worker take
  /// more events at once and the publisher go faster (each look moves a cache
  /// line between the two threads' cores). 0 to 10 ms; values outside are
  /// clamped.
  std::chrono::nanoseconds poll_interval{std::chrono::microseconds(4)};
  /// How long a worker whose queue ran empty keeps looking before it sleeps.
  /// Waking a sleeping worker costs the publisher a system call, so a burst
  /// with short gaps should not put it to sleep; it burns that much CPU time
  /// after the last event of a burst. 0: sleep at once.
  std::chrono::nanoseconds spin_before_sleep{std::chrono::microseconds(12)};
};

/// The default bus: in process, no persistence. Each subscription (or group)
/// has a bounded queue drained by its own worker thread, so one subscriber's
/// events arrive in publish order and a slow subscriber never blocks a
/// publisher; the members of a group take turns on their shared queue.
/// Publishers and workers share no lock per event: a queue is a ring of
/// events that a worker claims in runs (see poll_interval). The payload is
/// copied once per publish and shared by every subscriber; the storage of an
/// event is reused once nothing refers to it any more (up to 1024 kept per
/// bus), so steady publishing allocates nothing. Overflow policy: when a queue
/// is full the *oldest* queued event is dropped and counted in "dropped". A
/// handler that throws is retried up to max_attempts times, then the event is
/// counted in "failed" and skipped. unsubscribe() discards what the
/// subscription still had queued (a group's queue stays with its other
/// members); shutdown() drains for drain_timeout and counts the rest in
/// "dropped". publish() throws only when memory runs out (std::bad_alloc):
/// then nothing was published, unless a queue could not grow, in which case
/// the subscriptions before it in subscription order have the event.
std::shared_ptr<EventBus> make_memory_event_bus(MemoryBusOptions options = {});

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
