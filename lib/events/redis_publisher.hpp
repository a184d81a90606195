// Publishing on the Redis bus (internal): turning drafts into XADD commands,
// announcing topics in the registry set, and sharing round trips between
// concurrent publishers (group commit).
//
// Owns: the encoding of an event as a stream entry (fields topic, source,
// time, payload); the cache of topics already announced in
// `<key_prefix>topics` (dropped when the Link generation changes and every
// few seconds, so a Redis that lost the set hears them again); the published / publish_errors counts.
// Calls: Link and Pool (redis_link.hpp), hiredis through redis_wire.hpp.
//
// Locking: safe for concurrent use. GroupCommit's mutex orders publishers;
// the leader does its I/O without it. The registry cache has its own mutex,
// never held across I/O.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "events/redis_link.hpp"
#include "ordinaut/events.hpp"

namespace ordinaut::detail::redis {

/// Concurrent publishers share round trips: the first to arrive becomes the
/// leader and sends, on one pooled connection, its commands and those of
/// every publisher queued meanwhile, as one pipeline; the others wait for
/// their replies. A lone publisher pays one round trip, as with a plain
/// command; under concurrency Redis gets fewer, larger reads. A leader serves
/// one round and hands over, so nobody waits behind an endless stream of
/// others.
class GroupCommit {
 public:
  GroupCommit(Link& link, Pool& pool) : link_(link), pool_(pool) {}

  struct Outcome {
    std::vector<Reply> replies;  // one per command of the wire, when ok
    std::optional<Error> error;  // "bus_unavailable"
  };

  /// Sends `wire` (possibly with others' commands) and returns its replies.
  Outcome send(const Wire& wire);

 private:
  struct Request {
    const Wire* wire;
    Outcome outcome;
    bool done = false;
  };

  // REQUIRES: this thread is the leader (leading_ set by it).
  void run(std::vector<Request*>& batch);

  Link& link_;
  Pool& pool_;
  std::mutex mutex_;  // leading_, queue_, Request::done
  std::condition_variable turn_;
  bool leading_ = false;
  std::vector<Request*> queue_;
};

class Publisher {
 public:
  Publisher(const RedisBusOptions& options, Link& link, Pool& pool);

  /// Publishes `count` drafts in one pipeline and returns their ids. The
  /// topics must have been validated. Errors: "bus_unavailable",
  /// "redis_error" (naming the failing XADD and how many went before).
  Result<std::vector<std::string>> publish(std::string_view source, const EventDraft* drafts, std::size_t count);

  std::uint64_t published() const { return published_.load(); }
  std::uint64_t errors() const { return publish_errors_.load(); }

 private:
  struct TopicHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view t) const noexcept { return std::hash<std::string_view>{}(t); }
  };

  Link& link_;
  GroupCommit commits_;
  std::string streams_prefix_, registry_key_, max_len_;

  std::mutex registered_mutex_;  // registered_, registered_generation_, reannounce_at_
  // Topics announced in the registry set.
  std::unordered_set<std::string, TopicHash, std::equal_to<>> registered_;
  std::uint64_t registered_generation_ = 0;
  Clock::time_point reannounce_at_{};
  static constexpr std::chrono::seconds kReannounce{5};

  std::atomic<std::uint64_t> published_{0}, publish_errors_{0};
};

}  // namespace ordinaut::detail::redis
