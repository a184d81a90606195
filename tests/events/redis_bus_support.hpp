// Helpers shared by the Redis bus tests: quick options, a bus that must be
// created, and a collector of delivered events.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ordinaut/redis_bus.hpp"
#include "redis_server.hpp"

namespace ordinaut_test {

using namespace ordinaut;
using namespace std::chrono_literals;

/// Options with short timeouts and intervals, on `server`.
inline RedisBusOptions fast_options(const RedisServer& server, std::string prefix = "t:") {
  RedisBusOptions o;
  o.url = server.url();
  o.key_prefix = std::move(prefix);
  o.connect_timeout = 500ms;
  o.command_timeout = 1000ms;
  o.block_timeout = 500ms;
  o.discovery_interval = 50ms;
  o.claim_interval = 100ms;
  o.backoff_initial = 10ms;
  o.backoff_max = 200ms;
  o.stats_interval = 50ms;
  o.retry_delay = 5ms;
  return o;
}

inline std::shared_ptr<EventBus> make_bus(const RedisBusOptions& options) {
  auto bus = make_redis_event_bus(options);
  REQUIRE_MESSAGE(bus, (bus ? "" : bus.error().message));
  return *bus;
}

// Collects what a handler saw. The handler shares the state, so a bus that
// outlives the collector never writes into freed memory.
struct Collector {
  struct State {
    std::mutex mutex;
    std::vector<Event> events;
  };
  std::shared_ptr<State> state = std::make_shared<State>();

  EventHandler handler() {
    return [state = state](const Event& e) {
      std::lock_guard lock(state->mutex);
      state->events.push_back(e);
    };
  }
  std::vector<Event> events() {
    std::lock_guard lock(state->mutex);
    return state->events;
  }
  std::size_t size() { return events().size(); }
  std::vector<std::string> topics() {
    std::vector<std::string> out;
    for (const auto& e : events()) out.push_back(e.topic);
    return out;
  }
  std::vector<std::int64_t> numbers() {
    std::vector<std::int64_t> out;
    for (const auto& e : events()) out.push_back((*e.payload)["n"].GetInt64());
    return out;
  }
};

inline std::uint64_t counter(const JsonValue& doc, const char* key) { return doc[key].GetUint64(); }

/// SubscribeOptions of a named group.
inline SubscribeOptions in_group(std::string group) {
  SubscribeOptions so;
  so.group = std::move(group);
  return so;
}

}  // namespace ordinaut_test
