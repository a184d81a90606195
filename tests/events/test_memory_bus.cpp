// The in-memory event bus: patterns, ordering, groups, overflow, retries,
// cancellation, shutdown. Also built under ThreadSanitizer.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "ordinaut/events.hpp"
#include "ordinaut/json.hpp"
#include "bus_support.hpp"
#include "wait.hpp"

using namespace ordinaut;
using ordinaut_test::health_number;
using ordinaut_test::number;
using ordinaut_test::wait_until;
using namespace std::chrono_literals;

namespace {

Json payload(std::string_view text) { return std::move(json::parse(text).value()); }

// Collects what a handler saw, thread-safely.
struct Sink {
  mutable std::mutex mutex;
  std::vector<Event> events;
  EventHandler handler() {
    return [this](const Event& e) {
      std::lock_guard lock(mutex);
      events.push_back(e);
    };
  }
  std::size_t size() const {
    std::lock_guard lock(mutex);
    return events.size();
  }
  std::vector<std::string> topics() const {
    std::lock_guard lock(mutex);
    std::vector<std::string> out;
    for (const auto& e : events) out.push_back(e.topic);
    return out;
  }
  std::vector<std::int64_t> numbers() const {
    std::lock_guard lock(mutex);
    std::vector<std::int64_t> out;
    for (const auto& e : events) out.push_back((*e.payload)["n"].GetInt64());
    return out;
  }
};

}  // namespace

TEST_CASE("topic patterns and validation") {
  CHECK(topic_matches("*", "a"));
  CHECK(topic_matches("task.*", "task.done"));
  CHECK(topic_matches("task.*", "task.a.b"));
  CHECK_FALSE(topic_matches("task.*", "task"));
  CHECK_FALSE(topic_matches("task.*", "taskx.done"));
  CHECK(topic_matches("task.done", "task.done"));
  CHECK_FALSE(topic_matches("task.done", "task.done2"));
  CHECK(validate_topic("a.b:c-d_e"));
  CHECK(validate_topic("").error().code == "invalid_topic");
  CHECK(validate_topic("a b").error().message.find("found ' '") != std::string::npos);
  CHECK(validate_topic("caf\xc3\xa9").error().code == "invalid_topic");  // letters are ASCII only, whatever the locale
  CHECK(validate_topic("caf\xc3\xa9").error().message.find("(found byte 0xC3)") != std::string::npos);
  CHECK(validate_topic("a\tb").error().message.find("(found byte 0x09)") != std::string::npos);
  CHECK(validate_topic("task.*").error().code == "invalid_topic");
  CHECK(validate_topic(std::string(201, 'a')).error().code == "invalid_topic");
  CHECK(validate_pattern("*"));
  CHECK(validate_pattern("task.*"));
  CHECK(validate_pattern("task"));
  CHECK(validate_pattern("ta*").error().code == "invalid_pattern");
  CHECK(validate_pattern(".*").error().code == "invalid_pattern");
  CHECK(validate_pattern("*.x").error().code == "invalid_pattern");
}

TEST_CASE("publish returns the id; the event carries topic, source, time and payload") {
  Sink sink;
  auto bus = make_memory_event_bus();
  REQUIRE(bus->subscribe("ext_b", "task.done", sink.handler(), {}));
  const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  auto id = bus->publish("task.done", "ext_a", payload(R"({"task":7,"tags":["x"]})"));
  REQUIRE(id);
  REQUIRE(wait_until([&] { return sink.size() == 1; }));
  const Event& e = sink.events[0];
  CHECK(e.id == *id);
  CHECK(e.topic == "task.done");
  CHECK(e.source == "ext_a");
  CHECK(e.time_ms >= before);
  CHECK(json::dump(*e.payload) == R"({"task":7,"tags":["x"]})");
  auto doc = json::parse(e.to_json());
  REQUIRE(doc);
  CHECK(std::string((*doc)["id"].GetString()) == *id);
  CHECK(std::string((*doc)["source"].GetString()) == "ext_a");
  CHECK(std::string((*doc)["time"].GetString()).ends_with("Z"));
  CHECK((*doc)["payload"]["task"].GetInt() == 7);
  // Ids are unique.
  auto id2 = bus->publish("task.done", "ext_a", payload("{}"));
  CHECK(*id2 != *id);
}

TEST_CASE("exact, prefix and wildcard patterns each get what they match") {
  Sink exact, prefix, all;
  auto bus = make_memory_event_bus();
  REQUIRE(bus->subscribe("s", "task.done", exact.handler(), {}));
  REQUIRE(bus->subscribe("s", "task.*", prefix.handler(), {}));
  REQUIRE(bus->subscribe("s", "*", all.handler(), {}));
  for (const char* t : {"task.done", "task.started", "task", "tasks.x", "other.done", "task.a.b"}) {
    REQUIRE(bus->publish(t, "p", payload("{}")));
  }
  REQUIRE(wait_until([&] { return all.size() == 6 && prefix.size() == 3 && exact.size() == 1; }));
  std::this_thread::sleep_for(20ms);  // nothing more arrives
  CHECK(exact.topics() == std::vector<std::string>{"task.done"});
  CHECK(prefix.topics() == std::vector<std::string>{"task.done", "task.started", "task.a.b"});
  CHECK(all.size() == 6);
}

TEST_CASE("each subscriber sees its events in publish order") {
  Sink a, b;
  auto bus = make_memory_event_bus();
  REQUIRE(bus->subscribe("s", "seq", a.handler(), {}));
  REQUIRE(bus->subscribe("s", "*", b.handler(), {}));
  constexpr int kPerThread = 5000;
  std::vector<std::thread> publishers;
  for (int t = 0; t < 3; ++t) {
    publishers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) REQUIRE(bus->publish("seq", "p", number(t * kPerThread + i)));
    });
  }
  for (auto& p : publishers) p.join();
  REQUIRE(wait_until([&] { return a.size() == 3 * kPerThread && b.size() == 3 * kPerThread; }));
  // Per publisher, numbers must be increasing for each subscriber.
  for (const Sink* s : {&a, &b}) {
    std::map<std::int64_t, std::int64_t> last;
    for (auto n : s->numbers()) {
      auto thread = n / kPerThread;
      if (last.count(thread)) CHECK(n > last[thread]);
      last[thread] = n;
    }
  }
  CHECK(health_number(*bus, "delivered") == 6 * kPerThread);
  CHECK(health_number(*bus, "dropped") == 0);
}

TEST_CASE("a group shares its events; other groups and plain subscribers get them all") {
  Sink w1, w2, w3, audit, plain, other_ext;
  std::atomic<int> slow{0};
  auto bus = make_memory_event_bus();
  auto slow_handler = [&](Sink& s) {
    return [&s, &slow](const Event& e) {
      ++slow;
      std::this_thread::sleep_for(50us);  // let the other members take turns
      s.handler()(e);
    };
  };
  REQUIRE(bus->subscribe("ext_a", "job.*", slow_handler(w1), {.group = "workers", .consumer = ""}));
  REQUIRE(bus->subscribe("ext_a", "job.*", slow_handler(w2), {.group = "workers", .consumer = ""}));
  REQUIRE(bus->subscribe("ext_a", "job.*", slow_handler(w3), {.group = "workers", .consumer = ""}));
  REQUIRE(bus->subscribe("ext_a", "job.*", audit.handler(), {.group = "audit", .consumer = ""}));
  REQUIRE(bus->subscribe("ext_a", "job.*", plain.handler(), {}));
  // Same group name in another extension: a different group.
  REQUIRE(bus->subscribe("ext_b", "job.*", other_ext.handler(), {.group = "workers", .consumer = ""}));
  constexpr int kEvents = 3000;
  for (int i = 0; i < kEvents; ++i) REQUIRE(bus->publish("job.run", "p", number(i)));
  REQUIRE(wait_until([&] {
    return w1.size() + w2.size() + w3.size() == kEvents && audit.size() == kEvents && plain.size() == kEvents &&
           other_ext.size() == kEvents;
  }));
  std::set<std::int64_t> seen;
  for (const Sink* s : {&w1, &w2, &w3}) {
    for (auto n : s->numbers()) CHECK(seen.insert(n).second);  // each event to exactly one member
  }
  CHECK(seen.size() == kEvents);
  CHECK(w1.size() > 0);
  CHECK(w2.size() > 0);
  CHECK(w3.size() > 0);
  auto subs = bus->subscriber_health("ext_a");
  REQUIRE(subs.IsArray());
  CHECK(subs.Size() == 5);
  CHECK(std::string(subs[0]["group"].GetString()) == "workers");
}

// A subscription to "x" whose worker is stuck in its first event (number 0)
// until release(): what is published meanwhile stays queued.
struct StuckSubscriber {
  EventBus& bus;
  std::mutex gate;
  std::unique_lock<std::mutex> hold{gate};
  std::atomic<bool> first{true};
  Sink sink;
  explicit StuckSubscriber(EventBus& b) : bus(b) {
    REQUIRE(bus.subscribe("s", "x", [this](const Event& e) {
      if (first.exchange(false)) std::lock_guard wait_for_gate(gate);
      sink.handler()(e);
    }, {}));
    REQUIRE(bus.publish("x", "p", number(0)));
    REQUIRE(wait_until([&] { return !first.load(); }));
  }
  ~StuckSubscriber() {  // also after a failed REQUIRE: the worker must be gone before its handler's state
    if (hold.owns_lock()) hold.unlock();
    bus.shutdown();
  }
  void release() { hold.unlock(); }
};

TEST_CASE("a full queue drops its oldest events and counts them") {
  auto bus = make_memory_event_bus({.queue_capacity = 10, .max_attempts = 1, .retry_delay = 1ms,
                                    .drain_timeout = 1000ms});
  StuckSubscriber stuck(*bus);
  for (int i = 1; i <= 100; ++i) REQUIRE(bus->publish("x", "p", number(i)));
  CHECK(health_number(*bus, "dropped") == 90);
  auto subs = bus->subscriber_health("s");
  CHECK(subs[0]["pending"].GetUint64() == 10);
  CHECK(subs[0]["dropped"].GetUint64() == 90);
  stuck.release();
  REQUIRE(wait_until([&] { return stuck.sink.size() == 11; }));
  std::vector<std::int64_t> expected{0};
  for (int i = 91; i <= 100; ++i) expected.push_back(i);
  CHECK(stuck.sink.numbers() == expected);  // the newest ten survived, in order
}

TEST_CASE("a queue longer than its first ring grows, and drops only beyond its capacity") {
  // The ring starts at 1024 slots and doubles up to the capacity.
  auto bus = make_memory_event_bus({.queue_capacity = 2500, .max_attempts = 1, .retry_delay = 1ms,
                                    .drain_timeout = 5000ms});
  StuckSubscriber stuck(*bus);
  for (int i = 1; i <= 2000; ++i) REQUIRE(bus->publish("x", "p", number(i)));
  CHECK(health_number(*bus, "dropped") == 0);  // 2000 > 1024: the ring grew
  CHECK(health_number(*bus, "queued") == 2000);
  for (int i = 2001; i <= 3000; ++i) REQUIRE(bus->publish("x", "p", number(i)));
  CHECK(health_number(*bus, "dropped") == 500);
  CHECK(health_number(*bus, "queued") == 2500);
  stuck.release();
  REQUIRE(wait_until([&] { return stuck.sink.size() == 2501; }));
  std::vector<std::int64_t> expected{0};
  for (int i = 501; i <= 3000; ++i) expected.push_back(i);
  CHECK(stuck.sink.numbers() == expected);
}

TEST_CASE("concurrent publishers, a group and a full queue: each event delivered or dropped, exactly once") {
  constexpr int kPublishers = 3;
  constexpr int kPerPublisher = 6000;
  struct Seen {
    std::mutex mutex;
    std::set<std::pair<int, int>> events;  // (publisher, n)
    int duplicates = 0;
    int out_of_order = 0;
    std::map<int, int> last_n;  // per publisher, for the ordered (plain) subscription
    void add(const Event& e, bool ordered) {
      const int p = (*e.payload)["p"].GetInt(), n = (*e.payload)["n"].GetInt();
      std::lock_guard lock(mutex);
      if (!events.emplace(p, n).second) ++duplicates;
      if (ordered) {
        auto [it, fresh] = last_n.emplace(p, n);
        if (!fresh) {
          if (n <= it->second) ++out_of_order;
          it->second = n;
        }
      }
    }
  } group_seen, plain_seen;
  // Small enough to overflow while the handlers lag behind, large enough to grow the ring.
  auto bus = make_memory_event_bus({.queue_capacity = 1500, .max_attempts = 1, .retry_delay = 1ms,
                                    .drain_timeout = 10000ms});
  auto slow_now_and_then = [](const Event& e) {
    if ((*e.payload)["n"].GetInt() % 1000 == 0) std::this_thread::sleep_for(2ms);
  };
  for (int m = 0; m < 3; ++m) {
    REQUIRE(bus->subscribe("s", "load.*", [&](const Event& e) {
      slow_now_and_then(e);
      group_seen.add(e, false);
    }, {.group = "g", .consumer = {}}));
  }
  REQUIRE(bus->subscribe("s", "load.*", [&](const Event& e) {
    slow_now_and_then(e);
    plain_seen.add(e, true);
  }, {}));
  std::vector<std::thread> publishers;
  for (int p = 0; p < kPublishers; ++p) {
    publishers.emplace_back([&, p] {
      for (int n = 0; n < kPerPublisher; ++n) {
        Json doc = json::object();
        doc.AddMember("p", p, doc.GetAllocator());
        doc.AddMember("n", n, doc.GetAllocator());
        REQUIRE(bus->publish("load.x", "pub", doc));
      }
    });
  }
  for (auto& t : publishers) t.join();
  REQUIRE(wait_until([&] { return health_number(*bus, "queued") == 0; }, 20s));
  bus->shutdown();  // waits for the batches still being handled
  const auto published = static_cast<std::uint64_t>(kPublishers) * kPerPublisher;
  CHECK(health_number(*bus, "published") == published);
  std::lock_guard g(group_seen.mutex), p(plain_seen.mutex);
  CHECK(group_seen.duplicates == 0);
  CHECK(plain_seen.duplicates == 0);
  CHECK(plain_seen.out_of_order == 0);
  const std::uint64_t delivered = group_seen.events.size() + plain_seen.events.size();
  CHECK(health_number(*bus, "delivered") == delivered);
  CHECK(delivered + health_number(*bus, "dropped") == 2 * published);
  MESSAGE("delivered " << delivered << ", dropped " << health_number(*bus, "dropped"));
}

TEST_CASE("a throwing handler is retried with a growing pause, then counted failed; later events still flow") {
  std::atomic<int> attempts_of_1{0}, attempts_of_2{0};
  Sink sink;
  std::vector<std::chrono::steady_clock::time_point> times;
  auto bus = make_memory_event_bus({.queue_capacity = 100, .max_attempts = 3, .retry_delay = 20ms,
                                    .drain_timeout = 1000ms});
  REQUIRE(bus->subscribe("s", "x", [&](const Event& e) {
    auto n = (*e.payload)["n"].GetInt();
    if (n == 1) {
      times.push_back(std::chrono::steady_clock::now());
      if (++attempts_of_1 < 3) throw std::runtime_error("flaky");
    }
    if (n == 2) {
      ++attempts_of_2;
      throw std::runtime_error("always broken");
    }
    sink.handler()(e);
  }, {}));
  for (int i = 0; i < 4; ++i) REQUIRE(bus->publish("x", "p", number(i)));
  REQUIRE(wait_until([&] { return sink.size() == 3; }));
  CHECK(sink.numbers() == std::vector<std::int64_t>{0, 1, 3});
  CHECK(attempts_of_1 == 3);
  CHECK(attempts_of_2 == 3);
  REQUIRE(times.size() == 3);
  CHECK(times[1] - times[0] >= 19ms);
  CHECK(times[2] - times[1] >= 39ms);  // doubled
  auto h = bus->health();
  CHECK(h["failed"].GetUint64() == 1);
  CHECK(h["retried"].GetUint64() == 4);
  CHECK(h["delivered"].GetUint64() == 3);
  auto subs = bus->subscriber_health("s");
  CHECK(std::string(subs[0]["last_error"].GetString()).find("always broken") != std::string::npos);
}

TEST_CASE("a handler can cancel its own subscription") {
  std::atomic<int> calls{0};
  auto bus = make_memory_event_bus();
  auto sub = std::make_shared<Subscription>();
  EventSubscriber subscriber(bus, "s");
  auto result = subscriber.subscribe("x", [&, sub](const Event&) {
    if (++calls == 5) sub->cancel();
  });
  REQUIRE(result);
  *sub = *result;
  for (int i = 0; i < 50; ++i) REQUIRE(bus->publish("x", "p", number(i)));
  REQUIRE(wait_until([&] { return health_number(*bus, "subscriptions") == 0; }));
  std::this_thread::sleep_for(20ms);
  CHECK(calls == 5);
  // The bus keeps working for others.
  Sink other;
  REQUIRE(bus->subscribe("s", "x", other.handler(), {}));
  REQUIRE(bus->publish("x", "p", number(1)));
  REQUIRE(wait_until([&] { return other.size() == 1; }));
  bus->shutdown();
}

TEST_CASE("a handler that cancels its own subscription mid-batch: every event is still counted") {
  auto bus = make_memory_event_bus({.queue_capacity = 1000, .max_attempts = 1, .retry_delay = 1ms,
                                    .drain_timeout = 1000ms});
  std::mutex gate;
  std::unique_lock hold(gate);
  std::atomic<int> calls{0};
  auto sub = std::make_shared<Subscription>();
  EventSubscriber subscriber(bus, "s");
  auto result = subscriber.subscribe("x", [&, sub](const Event&) {
    if (++calls == 1) std::lock_guard wait_for_gate(gate);  // the rest queue up meanwhile
    if (calls == 11) sub->cancel();  // in the middle of a claimed run of events
  });
  REQUIRE(result);
  *sub = *result;
  REQUIRE(bus->publish("x", "p", number(0)));
  REQUIRE(wait_until([&] { return calls.load() == 1; }));
  for (int i = 1; i < 200; ++i) REQUIRE(bus->publish("x", "p", number(i)));
  hold.unlock();
  REQUIRE(wait_until([&] { return health_number(*bus, "subscriptions") == 0; }));
  // The cancelled worker counts the rest of its run after the queue is retired.
  CHECK(wait_until([&] { return health_number(*bus, "delivered") + health_number(*bus, "dropped") == 200; }));
  CHECK(health_number(*bus, "delivered") == 11);
  bus->shutdown();
  CHECK(health_number(*bus, "delivered") + health_number(*bus, "dropped") == 200);
}

TEST_CASE("a handler may shut its own bus down, and the bus's owner may destroy it right after") {
  for (int round = 0; round < 20; ++round) {
    auto bus = make_memory_event_bus();
    std::atomic<bool> shut{false};
    EventBus* raw = bus.get();
    REQUIRE(bus->subscribe("s", "x", [&, raw](const Event&) {
      if (!shut.load()) {
        raw->shutdown();
        shut = true;
      }
    }, {}));
    for (int i = 0; i < 10; ++i) (void)bus->publish("x", "p", number(i));
    REQUIRE(wait_until([&] { return shut.load(); }));
    bus.reset();  // the worker may still be returning from the handler (ASan checks it touches nothing freed)
  }
  std::this_thread::sleep_for(20ms);
}

TEST_CASE("workers that sleep at once still get every event, in order") {
  // spin_before_sleep 0: every gap puts the worker to sleep, so each event
  // goes through the publisher's wake-up handshake.
  auto bus = make_memory_event_bus({.queue_capacity = 4096, .max_attempts = 1, .retry_delay = 1ms,
                                    .drain_timeout = 1000ms, .poll_interval = std::chrono::nanoseconds(0),
                                    .spin_before_sleep = std::chrono::nanoseconds(0)});
  Sink plain, grouped;
  REQUIRE(bus->subscribe("s", "x", plain.handler(), {}));
  for (int m = 0; m < 3; ++m) REQUIRE(bus->subscribe("s", "x", grouped.handler(), {.group = "g", .consumer = {}}));
  std::vector<std::int64_t> expected;
  for (int i = 0; i < 3000; ++i) {
    REQUIRE(bus->publish("x", "p", number(i)));
    expected.push_back(i);
    if (i % 3 == 0) std::this_thread::yield();
  }
  REQUIRE(wait_until([&] { return plain.size() == 3000 && grouped.size() == 3000; }));
  CHECK(plain.numbers() == expected);
  auto seen = grouped.numbers();
  std::sort(seen.begin(), seen.end());
  CHECK(seen == expected);
}

TEST_CASE("unsubscribe waits for the running handler and stops delivery") {
  std::atomic<bool> inside{false}, finished{false};
  std::atomic<int> calls{0};
  auto bus = make_memory_event_bus();
  auto id = bus->subscribe("s", "x", [&](const Event&) {
    ++calls;
    inside = true;
    std::this_thread::sleep_for(50ms);
    finished = true;
  }, {});
  REQUIRE(id);
  for (int i = 0; i < 10; ++i) REQUIRE(bus->publish("x", "p", number(i)));
  REQUIRE(wait_until([&] { return inside.load(); }));
  bus->unsubscribe(*id);
  CHECK(finished.load());
  const int after = calls.load();
  REQUIRE(bus->publish("x", "p", number(99)));
  std::this_thread::sleep_for(20ms);
  CHECK(calls.load() == after);
  CHECK(after < 10);
  CHECK(health_number(*bus, "dropped") == static_cast<std::uint64_t>(10 - after));
  bus->unsubscribe(*id);  // twice is harmless
}

TEST_CASE("shutdown delivers what is queued within the drain timeout, then refuses work") {
  SUBCASE("drained") {
    Sink sink;
    auto bus = make_memory_event_bus({.queue_capacity = 1000, .max_attempts = 1, .retry_delay = 1ms,
                                      .drain_timeout = 5000ms});
    REQUIRE(bus->subscribe("s", "x", [&](const Event& e) {
      std::this_thread::sleep_for(100us);
      sink.handler()(e);
    }, {}));
    for (int i = 0; i < 300; ++i) REQUIRE(bus->publish("x", "p", number(i)));
    bus->shutdown();
    CHECK(sink.size() == 300);
    CHECK(health_number(*bus, "dropped") == 0);
    auto refused = bus->publish("x", "p", number(1));
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == "bus_stopped");
    CHECK(bus->subscribe("s", "x", sink.handler(), {}).error().code == "bus_stopped");
    CHECK_FALSE(bus->health()["connected"].GetBool());
  }
  SUBCASE("timed out: the rest is counted dropped") {
    Sink sink;
    auto bus = make_memory_event_bus({.queue_capacity = 1000, .max_attempts = 1, .retry_delay = 1ms,
                                      .drain_timeout = 30ms});
    REQUIRE(bus->subscribe("s", "x", [&](const Event& e) {
      std::this_thread::sleep_for(5ms);
      sink.handler()(e);
    }, {}));
    for (int i = 0; i < 200; ++i) REQUIRE(bus->publish("x", "p", number(i)));
    const auto start = std::chrono::steady_clock::now();
    bus->shutdown();
    CHECK(std::chrono::steady_clock::now() - start < 1s);
    CHECK(sink.size() < 200);
    CHECK(sink.size() + health_number(*bus, "dropped") == 200);
  }
}

TEST_CASE("the payload is a deep copy: the publisher's memory may change afterwards") {
  Sink sink;
  auto bus = make_memory_event_bus();
  REQUIRE(bus->subscribe("s", "x", sink.handler(), {}));
  std::string key = "a-rather-long-member-name-beyond-inline";
  std::string value = "a-rather-long-string-value-beyond-inline";
  {
    Json doc = json::object();
    // StringRef: rapidjson's own copy would keep pointers into `key`/`value`.
    doc.AddMember(rapidjson::StringRef(key.c_str()), rapidjson::StringRef(value.c_str()), doc.GetAllocator());
    JsonValue list(rapidjson::kArrayType);
    for (int i = 0; i < 40; ++i) list.PushBack(rapidjson::StringRef(value.c_str()), doc.GetAllocator());
    doc.AddMember("list", list, doc.GetAllocator());
    REQUIRE(bus->publish("x", "p", doc));
  }
  std::fill(key.begin(), key.end(), 'X');
  std::fill(value.begin(), value.end(), 'Y');
  REQUIRE(wait_until([&] { return sink.size() == 1; }));
  const Json& p = *sink.events[0].payload;
  REQUIRE(p.HasMember("a-rather-long-member-name-beyond-inline"));
  CHECK(std::string(p["a-rather-long-member-name-beyond-inline"].GetString()) ==
        "a-rather-long-string-value-beyond-inline");
  CHECK(p["list"].Size() == 40);
  CHECK(std::string(p["list"][39].GetString()) == "a-rather-long-string-value-beyond-inline");
}

TEST_CASE("a payload too big for the copy's scratch stack is copied whole") {
  // The copy is built on a 4 KiB stack buffer; 2000 values (16 bytes each on
  // that stack) move it to the heap half way.
  Sink sink;
  auto bus = make_memory_event_bus();
  REQUIRE(bus->subscribe("s", "x", sink.handler(), {}));
  Json doc = json::object();
  JsonValue list(rapidjson::kArrayType);
  for (int i = 0; i < 2000; ++i) {
    JsonValue item(rapidjson::kObjectType);
    item.AddMember("i", i, doc.GetAllocator());
    item.AddMember("text", JsonValue(fmt::format("value number {} of the list", i).c_str(), doc.GetAllocator()),
                   doc.GetAllocator());
    list.PushBack(item, doc.GetAllocator());
  }
  doc.AddMember("list", list, doc.GetAllocator());
  REQUIRE(bus->publish("x", "p", doc));
  REQUIRE(wait_until([&] { return sink.size() == 1; }));
  CHECK(*sink.events[0].payload == doc);
}

TEST_CASE("events a handler keeps stay intact while the bus reuses its storage for later ones") {
  // The bus recycles each event's storage once nothing refers to it; events
  // (or just payloads) still held must never be the ones reused.
  auto bus = make_memory_event_bus();
  std::mutex mutex;
  std::vector<Event> kept;                                // every 100th event, whole
  std::vector<std::shared_ptr<const Json>> kept_payloads;  // every 100th + 50, payload only
  std::atomic<int> seen{0};
  REQUIRE(bus->subscribe("s", "r.*", [&](const Event& e) {
    const auto n = (*e.payload)["n"].GetInt64();
    if (n % 100 == 0) {
      std::lock_guard lock(mutex);
      kept.push_back(e);
    } else if (n % 100 == 50) {
      std::lock_guard lock(mutex);
      kept_payloads.push_back(e.payload);
    }
    ++seen;
  }, {}));
  constexpr int kEvents = 5000;
  // Sizes vary: some fit the inline buffer, some need pool chunks.
  auto text_of = [](int i) { return std::string(static_cast<std::size_t>(i % 7) * 100, 'a' + static_cast<char>(i % 26)); };
  std::vector<std::string> ids;
  for (int i = 0; i < kEvents; ++i) {
    Json doc = number(i);
    doc.AddMember("text", Json().SetString(text_of(i).c_str(), doc.GetAllocator()), doc.GetAllocator());
    auto id = bus->publish(i % 2 ? "r.odd" : "r.even", "p", doc);
    REQUIRE(id);
    ids.push_back(*id);
    if (i % 500 == 0) std::this_thread::sleep_for(1ms);  // let the worker catch up, so storage is reused
  }
  REQUIRE(wait_until([&] { return seen.load() == kEvents; }));
  std::lock_guard lock(mutex);
  REQUIRE(kept.size() == kEvents / 100);
  REQUIRE(kept_payloads.size() == kEvents / 100);
  for (std::size_t k = 0; k < kept.size(); ++k) {
    const int i = static_cast<int>(k) * 100;
    const Event& e = kept[k];
    CHECK(e.id == ids[static_cast<std::size_t>(i)]);
    CHECK(e.topic == (i % 2 ? "r.odd" : "r.even"));
    CHECK(e.source == "p");
    CHECK((*e.payload)["n"].GetInt64() == i);
    CHECK(std::string((*e.payload)["text"].GetString()) == text_of(i));
    const int j = i + 50;
    const Json& p = *kept_payloads[k];
    CHECK(p["n"].GetInt64() == j);
    CHECK(std::string(p["text"].GetString()) == text_of(j));
  }
}

TEST_CASE("events held after the bus is destroyed stay valid") {
  std::vector<Event> kept;
  {
    auto bus = make_memory_event_bus();
    std::mutex mutex;
    REQUIRE(bus->subscribe("s", "x", [&](const Event& e) {
      std::lock_guard lock(mutex);
      kept.push_back(e);
    }, {}));
    for (int i = 0; i < 10; ++i) REQUIRE(bus->publish("x", "p", number(i)));
    REQUIRE(wait_until([&] {
      std::lock_guard lock(mutex);
      return kept.size() == 10;
    }));
  }
  for (int i = 0; i < 10; ++i) CHECK((*kept[static_cast<std::size_t>(i)].payload)["n"].GetInt64() == i);
  kept.clear();  // the last references: their storage is freed now (ASan checks)
}

TEST_CASE("the last copies of events may go on another thread while the bus is destroyed") {
  // Event storage returns to its bus's pool when the last copy goes; that
  // may race with the bus's destruction (run under ASan and TSan).
  for (int round = 0; round < 30; ++round) {
    std::mutex mutex;
    std::vector<Event> copies;
    std::atomic<bool> done{false};
    std::thread dropper([&] {
      while (!done.load()) {
        std::vector<Event> dropped;
        {
          std::lock_guard lock(mutex);
          dropped.swap(copies);
        }
        dropped.clear();  // outside the lock: the last references go here
        std::this_thread::yield();
      }
    });
    {
      auto bus = make_memory_event_bus();
      REQUIRE(bus->subscribe("s", "x", [&](const Event& e) {
        std::lock_guard lock(mutex);
        copies.push_back(e);
      }, {}));
      for (int i = 0; i < 200; ++i) REQUIRE(bus->publish("x", "p", number(i)));
    }  // destroyed while the dropper still lets go of copies
    done = true;
    dropper.join();
    std::lock_guard lock(mutex);
    for (const auto& e : copies) CHECK(e.payload->IsObject());
  }
}

TEST_CASE("bad input is refused and changes nothing") {
  Sink sink;
  auto bus = make_memory_event_bus();
  auto bad_pattern = bus->subscribe("s", "x*", sink.handler(), {});
  REQUIRE_FALSE(bad_pattern);
  CHECK(bad_pattern.error().code == "invalid_pattern");
  CHECK(bad_pattern.error().message.find("x*") != std::string::npos);
  auto no_handler = bus->subscribe("s", "x", EventHandler{}, {});
  CHECK(no_handler.error().code == "invalid_handler");
  CHECK(health_number(*bus, "subscriptions") == 0);
  auto bad_topic = bus->publish("bad topic", "p", payload("{}"));
  CHECK(bad_topic.error().code == "invalid_topic");
  CHECK(health_number(*bus, "published") == 0);
  // A batch with one bad topic publishes nothing.
  REQUIRE(bus->subscribe("s", "*", sink.handler(), {}));
  Json one = payload("{}");
  auto batch = bus->publish_batch("p", {{"ok", one}, {"not ok", one}});
  CHECK(batch.error().code == "invalid_topic");
  CHECK(health_number(*bus, "published") == 0);
  auto good = bus->publish_batch("p", {{"a", one}, {"b", one}});
  REQUIRE(good);
  CHECK(good->size() == 2);
  REQUIRE(wait_until([&] { return sink.size() == 2; }));
  CHECK(sink.topics() == std::vector<std::string>{"a", "b"});
}

TEST_CASE("subscribe, unsubscribe and publish from many threads at once") {
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> handled{0};
  auto bus = make_memory_event_bus({.queue_capacity = 256, .max_attempts = 2, .retry_delay = 1ms,
                                    .drain_timeout = 1000ms});
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) (void)bus->publish(t == 0 ? "churn.a" : "churn.b", "p", number(i));
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < 60; ++i) {
      SubscribeOptions options;
      if (i % 3 == 0) options.group = "g";
      auto id = bus->subscribe("churner", i % 2 ? "churn.*" : "*", [&](const Event& e) {
        ++handled;
        if ((*e.payload)["n"].GetInt() % 97 == 0) throw std::runtime_error("boom");
      }, options);
      REQUIRE(id);
      std::this_thread::sleep_for(1ms);
      (void)bus->health();
      (void)bus->subscriber_health("churner");
      if (i % 4 != 0) bus->unsubscribe(*id);
    }
  });
  threads.back().join();
  threads.pop_back();
  stop = true;
  for (auto& t : threads) t.join();
  CHECK(handled.load() > 0);
  bus->unsubscribe_all("churner");
  CHECK(health_number(*bus, "subscriptions") == 0);
  bus->shutdown();
}
