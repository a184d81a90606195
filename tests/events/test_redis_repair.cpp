// The Redis bus repairs what Redis lost and refuses what is no event, against
// a real redis-server: entries that are not JSON or nest too deeply (issue
// 13); groups and topics lost to FLUSHALL or a restart without persistence;
// subscriptions made while Redis is down; health derived from what happened
// (issue 15). Timing is never asserted: states are awaited with generous
// deadlines.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <signal.h>

#include <algorithm>

#include "bus_support.hpp"
#include "redis_bus_support.hpp"
#include "wait.hpp"

using namespace ordinaut_test;

namespace {

std::string status_of(const JsonValue& doc) { return doc["status"].GetString(); }

}  // namespace

TEST_CASE("entries that are not JSON, or nest too deeply, are acknowledged, counted and never delivered") {
  RedisServer redis;
  auto options = fast_options(redis);
  std::vector<std::string> logged;
  std::mutex log_mutex;
  options.log = [&](const LogRecord& r) {
    std::lock_guard lock(log_mutex);
    logged.push_back(r.event + ": " + r.message);
  };
  auto bus = make_bus(options);
  Collector c;
  REQUIRE(bus->subscribe("deep", "task.*", c.handler(), in_group("g")));
  redis.command({"SADD", "t:topics", "task.deep"});
  const std::string deep(1 << 20, '[');  // 1 MiB of '[': a recursive parser would overflow its stack
  const std::string key = "t:events:task.deep";
  REQUIRE(redis.command({"XADD", key, "*", "topic", "task.deep", "source", "x", "time", "1", "payload", deep}).type ==
          REDIS_REPLY_STRING);
  REQUIRE(
      redis.command({"XADD", key, "*", "topic", "task.deep", "source", "x", "time", "1", "payload", "not json"}).type ==
      REDIS_REPLY_STRING);
  REQUIRE(bus->publish("task.deep", "p", number(7)));
  // The subscriber gets the valid event, and only that one; the process lives on.
  REQUIRE(wait_until([&] { return c.size() == 1; }));
  std::this_thread::sleep_for(200ms);
  CHECK(c.numbers() == std::vector<std::int64_t>{7});
  CHECK(bus->health()["rejected"]["invalid_json"].GetUint64() == 2);
  // Acknowledged: nothing left pending in the group.
  REQUIRE(wait_until([&] {
    auto subs = bus->subscriber_health("deep");
    return subs.Size() == 1 && subs[0]["pending"].GetInt64() == 0 && counter(subs[0], "rejected") == 2;
  }));
  CHECK(redis.command({"XPENDING", key, "t:group:deep:g:task.*"}).elements[0].integer == 0);
  {
    // Logged once per stream within the minute, not per entry.
    std::lock_guard lock(log_mutex);
    std::size_t rejected_lines = 0;
    for (const auto& line : logged) rejected_lines += line.starts_with("event_rejected") ? 1 : 0;
    CHECK(rejected_lines == 1);
  }
  // An entry without a payload field is refused too.
  redis.command({"XADD", key, "*", "topic", "task.deep"});
  REQUIRE(wait_until([&] { return bus->health()["rejected"]["no_payload"].GetUint64() == 1; }));
  CHECK(c.size() == 1);
}

TEST_CASE("after FLUSHALL a pattern subscription recreates its group once and delivers again") {
  RedisServer redis;
  auto options = fast_options(redis);
  std::atomic<int> recreated_lines{0};
  options.log = [&](const LogRecord& r) {
    if (r.event == "event_group_recreated") recreated_lines.fetch_add(1);
  };
  auto publisher = make_bus(options);
  auto subscriber = make_bus(options);
  Collector c;
  REQUIRE(subscriber->subscribe("observer", "task.*", c.handler(), in_group("obs")));
  REQUIRE(publisher->publish("task.done", "p", number(1)));
  REQUIRE(wait_until([&] { return c.size() == 1; }));
  redis.command({"FLUSHALL"});
  // Published after the flush: delivered once the group is back.
  REQUIRE(wait_until(
      [&] {
        (void)publisher->publish("task.done", "p", number(2));
        const auto got = c.numbers();
        return std::find(got.begin(), got.end(), 2) != got.end();
      },
      20s));
  CHECK(subscriber->health()["group_recreated"].GetUint64() >= 1);
  CHECK(recreated_lines.load() >= 1);
  // Recreated once, not in a loop: the count stays put while events flow.
  const auto recreated = subscriber->health()["group_recreated"].GetUint64();
  for (int n = 3; n < 13; ++n) REQUIRE(publisher->publish("task.done", "p", number(n)));
  REQUIRE(wait_until([&] { return c.numbers().back() == 12; }));
  CHECK(subscriber->health()["group_recreated"].GetUint64() == recreated);
  // The topic is back in the topic set, so a bus started now finds it.
  CHECK(redis.command({"SISMEMBER", "t:topics", "task.done"}).integer == 1);
  auto late = make_bus(options);
  Collector d;
  REQUIRE(late->subscribe("late", "task.*", d.handler(), {}));
  REQUIRE(wait_until([&] {
    (void)publisher->publish("task.done", "p", number(100));
    return d.size() >= 1;
  }));
  REQUIRE(wait_until([&] { return status_of(subscriber->health()) == "ok"; }));
}

TEST_CASE("a publisher announces its topics again, so a subscriber started after a flush finds them") {
  RedisServer redis;
  auto options = fast_options(redis);
  auto publisher = make_bus(options);
  REQUIRE(publisher->publish("job.started", "p", number(0)));
  redis.command({"FLUSHALL"});  // the topic set is gone; the publisher's connection never noticed
  auto subscriber = make_bus(options);
  Collector c;
  REQUIRE(subscriber->subscribe("s", "job.*", c.handler(), {}));
  REQUIRE(wait_until(
      [&] {
        (void)publisher->publish("job.started", "p", number(1));
        std::this_thread::sleep_for(20ms);
        return c.size() >= 1;
      },
      30s));
}

TEST_CASE("with subscribe_while_unreachable a subscription made while Redis is down goes live when it answers") {
  auto redis = std::make_unique<RedisServer>();
  auto options = fast_options(*redis);
  options.subscribe_while_unreachable = true;
  redis->kill();
  auto bus = make_bus(options);
  Collector c;
  auto sub = bus->subscribe("s", "late.*", c.handler(), {});
  REQUIRE_MESSAGE(sub, (sub ? "" : sub.error().message));
  auto subs = bus->subscriber_health("s");
  REQUIRE(subs.Size() == 1);
  CHECK(status_of(subs[0]) == "degraded");
  CHECK(std::string(subs[0]["reason"].GetString()).find("event bus unreachable since") != std::string::npos);
  CHECK(status_of(bus->health()) == "degraded");
  CHECK_FALSE(bus->health()["up"].GetBool());
  // Publishing fails fast with a clear error meanwhile.
  auto refused = bus->publish("late.x", "p", number(0));
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == "bus_unavailable");
  redis->restart();
  REQUIRE(wait_until([&] { return status_of(bus->subscriber_health("s")[0]) == "ok"; }));
  REQUIRE(wait_until([&] {
    (void)bus->publish("late.x", "p", number(1));
    return c.size() >= 1;
  }));
  CHECK(status_of(bus->health()) == "ok");
}

TEST_CASE("health turns degraded while Redis is stopped or gone, unhealthy after unhealthy_after, ok after") {
  RedisServer redis;
  auto options = fast_options(redis);
  options.unhealthy_after = 1500ms;
  auto bus = make_bus(options);
  Collector c;
  REQUIRE(bus->subscribe("s", "h.x", c.handler(), {}));
  REQUIRE(wait_until([&] { return status_of(bus->health()) == "ok"; }));
  redis.signal(SIGSTOP);
  REQUIRE(wait_until([&] { return status_of(bus->subscriber_health("s")[0]) == "degraded"; }));
  CHECK_FALSE(bus->health()["connected"].GetBool());
  REQUIRE(wait_until([&] { return status_of(bus->health()) == "unhealthy"; }));
  redis.signal(SIGCONT);
  REQUIRE(wait_until([&] { return status_of(bus->health()) == "ok"; }));
  REQUIRE(wait_until([&] {
    (void)bus->publish("h.x", "p", number(1));
    return c.size() >= 1;
  }));
  redis.kill();
  REQUIRE(wait_until([&] { return status_of(bus->subscriber_health("s")[0]) != "ok"; }));
  redis.restart();
  REQUIRE(wait_until([&] { return status_of(bus->subscriber_health("s")[0]) == "ok"; }));
}

TEST_CASE("unhealthy_after must be positive") {
  RedisBusOptions options;
  options.unhealthy_after = 0ms;
  auto bus = make_redis_event_bus(options);
  REQUIRE_FALSE(bus);
  CHECK(bus.error().code == "invalid_configuration");
}
