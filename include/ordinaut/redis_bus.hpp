// The Redis Streams event bus: events shared between processes through Redis.
//
// Layout. Each topic is one stream, key `<key_prefix>events:<topic>`, so a
// topic's events keep their order and topics spread over keys (and over the
// shards of a cluster-aware proxy). Every entry holds the fields topic,
// source, time (ms since the epoch) and payload (JSON text); the event id is
// the stream entry id ("1718000000000-0"). XADD trims each stream with
// `MAXLEN ~ max_stream_length`. Publishers also add each topic, once per
// connection epoch, to the set `<key_prefix>topics`; a subscription to
// "prefix.*" or "*" reads that set every discovery_interval and joins the
// streams whose topic matches, so a topic that appears later is picked up
// without losing its first events (see consumer groups below).
//
// Consumer groups. Every subscription reads with XREADGROUP through a consumer
// group on each of its streams. A named group (SubscribeOptions::group) is
// `<key_prefix>group:<subscriber>:<group>:<pattern>`: every process that
// subscribes the same extension with the same group and pattern shares it, and
// a restarted process resumes where the group stopped. A subscription without
// a group gets a private group `<key_prefix>sub:<subscriber>:<random>`, so it
// sees every event; unsubscribe() and shutdown() destroy private groups. New
// groups start at the subscription's time (Redis TIME), so events published
// after subscribe() returned are delivered even on streams discovered later.
//
// Delivery. An entry is acknowledged (XACK) only after its handler returned.
// A handler that throws is retried in place with a doubling pause, up to
// max_attempts deliveries; then the entry is acknowledged and counted
// "failed". After a reconnect a subscription first re-reads its own pending
// entries; every claim_interval it claims (XPENDING + XCLAIM, Redis ≥ 5) the
// entries that another consumer of its group has left pending for longer than
// claim_min_idle — a consumer that died. Delivery is therefore at least once.
// Entries trimmed by MAXLEN before they were read are lost to slow readers;
// pending ones that were trimmed are acknowledged and counted "dropped".
//
// Outage policy. publish(), publish_batch() and subscribe() fail fast with
// code "bus_unavailable" when Redis cannot be reached within connect_timeout
// (or a command does not answer within command_timeout); after a failure they
// fail at once, without trying, until a backoff delay has passed. Nothing is
// buffered: a publisher that gets an error knows the event was not
// acknowledged and may retry. An event whose publish() returned an id was
// acknowledged by Redis (its durability is Redis' appendfsync setting).
// With subscribe_while_unreachable, subscribe() records the subscription
// instead of failing. Running subscriptions reconnect with exponential backoff
// and full jitter (backoff_initial doubling up to backoff_max) and resume
// from their groups.
//
// Repairs. A Redis that lost the bus's keys (FLUSHALL, a restart without
// persistence) answers XREADGROUP with NOGROUP: the subscription then
// recreates its group on each joined stream (XGROUP CREATE ... MKSTREAM),
// once, starting after the last entry it handled there (or at its start), so
// what Redis still holds is delivered and nothing handled is delivered again;
// it logs the repair and counts it ("group_recreated"). Pattern subscriptions
// put their topics back into the topic set when it lost them, and publishers
// announce their topics again every few seconds, so discovery works across
// processes started in any order. An entry whose payload is not JSON (or
// nests deeper than json::parse allows) or that has no payload is never
// delivered: it is acknowledged, counted in "rejected" by reason, and logged
// (at most once a minute per stream).
//
// Health. health() gives {"kind":"redis","url" (without password),
// "status","up","connected","reconnects","last_error",...}; subscriber_health()
// gives per subscription its "status", "reason", "last_read" and streams with
// the group's pending count and lag (Redis 7 XINFO GROUPS; null on older
// servers), refreshed every stats_interval. "status" is derived from what
// happened: "ok" while reads succeed; "degraded" from the first failed read or
// connection, or when Redis stops answering (a read or PING overdue), with the
// reason ("event bus unreachable since ..."); "unhealthy" once that lasted
// unhealthy_after. "up" is false while the bus cannot reach Redis.
//
// Thread safety: the bus is safe for concurrent use. Each subscription has its
// own connection and worker thread; publishers share a pool of connections
// (one per concurrent publisher).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "ordinaut/events.hpp"
#include "ordinaut/logging.hpp"
#include "ordinaut/result.hpp"
#include "ordinaut/version.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

/// A parsed `redis://[[user]:password@]host[:port][/db]` URL.
struct RedisUrl {
  std::string host;      ///< name, IPv4 address, or IPv6 address without brackets
  int port = 6379;       ///< 1..65535
  int db = 0;            ///< database number (SELECT)
  std::string username;  ///< empty: AUTH with the password only
  std::string password;  ///< percent-decoded; empty: no AUTH

  /// The URL again, with the password replaced by "***".
  std::string redacted() const;
};

/// Parses a Redis URL strictly. Errors (code "invalid_redis_url", the message
/// names the part): another scheme (rediss:// is not supported), empty host,
/// port not in 1..65535, db not a number in 0..1000000, a query or fragment,
/// anything after the db, malformed percent escapes.
Result<RedisUrl> parse_redis_url(std::string_view url);

/// Settings of the Redis Streams bus (make_redis_event_bus()).
struct RedisBusOptions {
  /// Where Redis is; see parse_redis_url().
  std::string url = "redis://127.0.0.1:6379/0";
  /// Prefix of every key the bus uses; lets buses share one Redis database.
  std::string key_prefix = "ordinaut:";
  /// Approximate bound of each topic stream (XADD MAXLEN ~).
  std::size_t max_stream_length = 100000;
  std::chrono::milliseconds connect_timeout{1000};  ///< longest wait for a connection
  /// Longest wait for a reply (XREADGROUP adds its block time).
  std::chrono::milliseconds command_timeout{2000};
  /// XREADGROUP BLOCK time; stopping does not wait for it.
  std::chrono::milliseconds block_timeout{2000};
  /// How often pattern subscriptions look for new topics.
  std::chrono::milliseconds discovery_interval{500};
  /// How often a subscription claims entries left pending by dead consumers,
  /// and how long an entry must have been idle to be claimed.
  std::chrono::milliseconds claim_interval{5000};
  std::chrono::milliseconds claim_min_idle{30000};  ///< see claim_interval
  /// Reconnect delays: a random delay up to backoff_initial × 2^failures,
  /// capped at backoff_max (so delivery resumes within about backoff_max of
  /// Redis answering again).
  std::chrono::milliseconds backoff_initial{50};
  std::chrono::milliseconds backoff_max{2000};  ///< see backoff_initial
  /// How often a subscription refreshes its pending/lag figures.
  std::chrono::milliseconds stats_interval{1000};
  /// Deliveries tried per entry before it is acknowledged as failed, and the
  /// pause after the first failure (doubling after each further one).
  int max_attempts = 3;
  std::chrono::milliseconds retry_delay{10};  ///< see max_attempts
  /// Entries fetched per XREADGROUP.
  std::size_t read_count = 256;
  /// A subscription (and the bus) that could not read from Redis for this
  /// long reports "unhealthy"; before that, from the first failure, "degraded".
  std::chrono::milliseconds unhealthy_after{30000};
  /// subscribe() while Redis is unreachable. false: fails with
  /// "bus_unavailable". true: the subscription is recorded and goes live when
  /// Redis answers; its groups start at the time of subscribe() (this
  /// process's clock). make_event_bus_from_url() sets it.
  bool subscribe_while_unreachable = false;
  /// Where the bus logs what it repairs or refuses (groups recreated,
  /// rejected entries); empty: JSON lines on stderr.
  LogSink log;
  /// Name of this process in consumer names ("<name>:<n>", n counting the
  /// subscriptions of the process, unless SubscribeOptions::consumer is set);
  /// default "<hostname>:<pid>".
  std::string consumer_name;
};

/// Creates the Redis bus and checks the URL and options. It connects once:
/// a refused AUTH or SELECT fails with "redis_auth_failed" / "redis_error",
/// while an unreachable server is not an error here (the bus starts
/// disconnected and health() says why).
Result<std::shared_ptr<EventBus>> make_redis_event_bus(const RedisBusOptions& options);

/// The bus a host should use: the Redis bus when `redis_url` (or else the
/// REDIS_URL environment variable) is set and not empty, otherwise the
/// in-memory bus. Errors as make_redis_event_bus().
Result<std::shared_ptr<EventBus>> make_event_bus_from_url(std::string_view redis_url = {});

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
