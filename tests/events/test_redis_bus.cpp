// The Redis Streams bus against a real redis-server started on a free loopback
// port: layout, patterns, groups, redelivery, reclaiming, outages, restarts,
// several buses and processes on one Redis, and the host contract.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <cstdio>
#include <regex>
#include <set>
#include <thread>

#include "bus_support.hpp"
#include "host_contract.hpp"
#include "ordinaut/redis_bus.hpp"
#include "redis_bus_support.hpp"
#include "redis_server.hpp"

using namespace ordinaut_test;
using namespace std::chrono_literals;

namespace {

const std::regex kStreamId("[0-9]+-[0-9]+");

}  // namespace

TEST_CASE("Redis URLs are parsed strictly") {
  auto ok = parse_redis_url("redis://:s3cr%40t@cache.local:6380/2");
  REQUIRE(ok);
  CHECK(ok->host == "cache.local");
  CHECK(ok->port == 6380);
  CHECK(ok->db == 2);
  CHECK(ok->password == "s3cr@t");
  CHECK(ok->username.empty());
  CHECK(ok->redacted() == "redis://:***@cache.local:6380/2");
  auto user = parse_redis_url("redis://app:pw@127.0.0.1:7000/0");
  REQUIRE(user);
  CHECK(user->username == "app");
  auto defaults = parse_redis_url("redis://localhost");
  REQUIRE(defaults);
  CHECK(defaults->port == 6379);
  CHECK(defaults->db == 0);
  auto v6 = parse_redis_url("redis://[::1]:6390/1");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->redacted() == "redis://[::1]:6390/1");
  struct Bad {
    const char* url;
    const char* mentions;
  };
  for (const Bad& bad : {Bad{"http://localhost:6379", "redis://"}, Bad{"rediss://localhost:6379", "TLS"},
                         Bad{"redis://:6379/0", "host is empty"}, Bad{"redis://host:0/0", "port \"0\""},
                         Bad{"redis://host:65536", "port"}, Bad{"redis://host:63a9", "port \"63a9\""},
                         Bad{"redis://host:/0", "port after"}, Bad{"redis://host:6379/x", "database \"x\""},
                         Bad{"redis://host:6379/-1", "database"}, Bad{"redis://host:6379/0/extra", "database"},
                         Bad{"redis://host:6379/0?timeout=1", "query"}, Bad{"redis://pw@host", "credentials"},
                         Bad{"redis://:@host", "password is empty"}, Bad{"redis://:p%zz@host", "percent"},
                         Bad{"redis://ho st:1", "contains ' '"}, Bad{"redis://[::1:6379", "IPv6"},
                         Bad{"", "redis://"}}) {
    auto r = parse_redis_url(bad.url);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == "invalid_redis_url");
    CHECK_MESSAGE(r.error().message.find(bad.mentions) != std::string::npos, r.error().message);
  }
  RedisBusOptions options;
  options.url = "redis://localhost:notaport";
  auto bus = make_redis_event_bus(options);
  REQUIRE_FALSE(bus);
  CHECK(bus.error().code == "invalid_redis_url");
  options.url = "redis://localhost:6379/0";
  options.max_attempts = 0;
  CHECK(make_redis_event_bus(options).error().code == "invalid_configuration");
}

TEST_CASE("an event is one stream entry per topic; its id is the stream id") {
  RedisServer redis;
  auto bus = make_bus(fast_options(redis));
  Collector c;
  REQUIRE(bus->subscribe("reader", "order.created", c.handler(), {}));
  auto id = bus->publish("order.created", "shop", parse_json(R"({"order":42,"items":["a","b"]})"));
  REQUIRE(id);
  CHECK(std::regex_match(*id, kStreamId));
  // The stored entry: fields topic, source, time, payload (JSON text).
  auto range = redis.command({"XRANGE", "t:events:order.created", "-", "+"});
  REQUIRE(range.elements.size() == 1);
  CHECK(range.elements[0].elements[0].str == *id);
  const auto& fields = range.elements[0].elements[1].elements;
  REQUIRE(fields.size() == 8);
  CHECK(fields[0].str == "topic");
  CHECK(fields[1].str == "order.created");
  CHECK(fields[3].str == "shop");
  CHECK(fields[6].str == "payload");
  CHECK(fields[7].str == R"({"order":42,"items":["a","b"]})");
  CHECK(redis.command({"SISMEMBER", "t:topics", "order.created"}).integer == 1);

  REQUIRE(wait_until([&] { return c.size() == 1; }));
  const Event e = c.events()[0];
  CHECK(e.id == *id);
  CHECK(e.source == "shop");
  CHECK(e.topic == "order.created");
  CHECK(e.time_ms > 0);
  CHECK((*e.payload)["order"].GetInt() == 42);
  auto doc = parse_json(e.to_json());
  CHECK(std::string(doc["id"].GetString()) == *id);
  CHECK(doc["payload"]["items"].Size() == 2);
  // Acknowledged after the handler: nothing pending. Pending, lag and the
  // group's position come from a periodic XINFO snapshot, so wait for one
  // taken after the delivery (one from before the publish also says 0/0).
  REQUIRE(wait_until([&] {
    auto subs = bus->subscriber_health("reader");
    return subs.Size() == 1 && counter(subs[0], "delivered") == 1 && subs[0]["pending"].GetInt64() == 0 &&
           subs[0]["streams"].Size() == 1 && subs[0]["lag"].IsInt64() && subs[0]["lag"].GetInt64() == 0 &&
           std::string(subs[0]["streams"][0]["last_delivered_id"].GetString()) == *id;
  }));
  auto subs = bus->subscriber_health("reader");
  CHECK(std::string(subs[0]["streams"][0]["stream"].GetString()) == "t:events:order.created");
  CHECK(std::string(subs[0]["streams"][0]["last_delivered_id"].GetString()) == *id);
  auto h = bus->health();
  CHECK(std::string(h["kind"].GetString()) == "redis");
  CHECK(h["connected"].GetBool());
  CHECK(counter(h, "published") == 1);
  CHECK(std::string(h["url"].GetString()) == redis.url());
}

TEST_CASE("exact, prefix and wildcard patterns, including topics that appear later") {
  RedisServer redis;
  auto bus = make_bus(fast_options(redis));
  REQUIRE(bus->publish("task.old", "p", number(0)));  // before subscribing: not delivered
  Collector exact, prefix, all;
  REQUIRE(bus->subscribe("s", "task.done", exact.handler(), {}));
  REQUIRE(bus->subscribe("s", "task.*", prefix.handler(), {}));
  REQUIRE(bus->subscribe("s", "*", all.handler(), {}));
  std::int64_t n = 1;
  for (const char* t : {"task.done", "task.started", "task", "tasks.x", "other.done", "task.a.b", "task.old"}) {
    REQUIRE(bus->publish(t, "p", number(n++)));  // most of these topics are new streams
  }
  REQUIRE(wait_until([&] { return all.size() == 7 && prefix.size() == 4 && exact.size() == 1; }));
  std::this_thread::sleep_for(100ms);
  CHECK(exact.topics() == std::vector<std::string>{"task.done"});
  auto p = prefix.topics();
  CHECK(std::set<std::string>(p.begin(), p.end()) ==
        std::set<std::string>{"task.done", "task.started", "task.a.b", "task.old"});
  CHECK(all.size() == 7);
  for (auto v : all.numbers()) CHECK(v > 0);  // the event published before subscribing never came
  // Several events on one topic keep their order.
  Collector ordered;
  REQUIRE(bus->subscribe("s", "seq", ordered.handler(), {}));
  for (int i = 0; i < 300; ++i) REQUIRE(bus->publish("seq", "p", number(i)));
  REQUIRE(wait_until([&] { return ordered.size() == 300; }));
  auto numbers = ordered.numbers();
  CHECK(std::is_sorted(numbers.begin(), numbers.end()));
}

TEST_CASE("a group shares events across buses; other groups and plain subscribers get all") {
  RedisServer redis;
  auto a = make_bus(fast_options(redis));
  auto b = make_bus(fast_options(redis));  // another connection set, like another process
  Collector wa, wb, audit, plain_a, plain_b, other_ext;
  SubscribeOptions workers;
  workers.group = "workers";
  // Sharing is made certain, not left to scheduling: a member's first event
  // blocks its worker until the other member has one too, so the event
  // published next can only be read by the other member.
  auto first_waits_for = [](Collector& self, Collector& other) {
    return [record = self.handler(), self = self.state, other = other.state](const Event& e) {
      record(e);
      bool first = false;
      {
        std::lock_guard lock(self->mutex);
        first = self->events.size() == 1;
      }
      if (!first) return;
      const auto deadline = std::chrono::steady_clock::now() + 30s;
      while (std::chrono::steady_clock::now() < deadline) {
        {
          std::lock_guard lock(other->mutex);
          if (!other->events.empty()) return;
        }
        std::this_thread::sleep_for(1ms);
      }
    };
  };
  REQUIRE(a->subscribe("billing", "job.*", first_waits_for(wa, wb), workers));
  REQUIRE(b->subscribe("billing", "job.*", first_waits_for(wb, wa), workers));
  SubscribeOptions audit_group;
  audit_group.group = "audit";
  REQUIRE(b->subscribe("billing", "job.*", audit.handler(), audit_group));
  REQUIRE(a->subscribe("billing", "job.*", plain_a.handler(), {}));
  REQUIRE(b->subscribe("billing", "job.*", plain_b.handler(), {}));
  REQUIRE(b->subscribe("intruder", "job.*", other_ext.handler(), workers));  // same name, other extension
  constexpr int kEvents = 400;
  auto publish = [&](int i) { REQUIRE((i % 2 ? a : b)->publish(i % 3 ? "job.run" : "job.stop", "p", number(i))); };
  publish(0);
  REQUIRE(wait_until([&] { return wa.size() + wb.size() == 1; }));
  publish(1);
  REQUIRE(wait_until([&] { return wa.size() > 0 && wb.size() > 0; }));
  for (int i = 2; i < kEvents; ++i) publish(i);
  const bool all_arrived = wait_until([&] {
    return wa.size() + wb.size() == kEvents && audit.size() == kEvents && plain_a.size() == kEvents &&
           plain_b.size() == kEvents && other_ext.size() == kEvents;
  });
  INFO("workers ", wa.size(), "+", wb.size(), " audit ", audit.size(), " plain ", plain_a.size(), "/",
       plain_b.size(), " other ", other_ext.size());
  REQUIRE(all_arrived);
  std::set<std::int64_t> seen;
  for (Collector* w : {&wa, &wb}) {
    for (auto n : w->numbers()) CHECK(seen.insert(n).second);
  }
  CHECK(seen.size() == kEvents);
  CHECK(wa.size() > 0);
  CHECK(wb.size() > 0);
  auto subs = a->subscriber_health("billing");
  REQUIRE(subs.Size() == 2);
  std::set<std::string> groups;
  for (auto& s : subs.GetArray()) groups.insert(s["redis_group"].GetString());
  CHECK(groups.count("t:group:billing:workers:job.*") == 1);
}

TEST_CASE("a throwing handler's event is redelivered, then acknowledged; a hopeless one is counted failed") {
  RedisServer redis;
  auto options = fast_options(redis);
  options.max_attempts = 3;
  std::mutex mutex;
  std::map<std::int64_t, int> attempts;
  Collector ok;
  auto bus = make_bus(options);
  REQUIRE(bus->subscribe("s", "flaky", [&](const Event& e) {
    const auto n = (*e.payload)["n"].GetInt64();
    {
      std::lock_guard lock(mutex);
      ++attempts[n];
      if (n == 1 && attempts[n] == 1) throw std::runtime_error("transient");
      if (n == 2) throw std::runtime_error("poison");
    }
    ok.handler()(e);
  }, {}));
  for (int i = 0; i < 4; ++i) REQUIRE(bus->publish("flaky", "p", number(i)));
  REQUIRE(wait_until([&] { return ok.size() == 3; }));
  CHECK(ok.numbers() == std::vector<std::int64_t>{0, 1, 3});
  {
    std::lock_guard lock(mutex);
    CHECK(attempts[1] == 2);
    CHECK(attempts[2] == 3);
  }
  REQUIRE(wait_until([&] {
    auto s = bus->subscriber_health("s");
    return s[0]["pending"].GetInt64() == 0 && counter(s[0], "failed") == 1;
  }));
  auto s = bus->subscriber_health("s");
  CHECK(counter(s[0], "retried") == 3);
  CHECK(std::string(s[0]["last_error"].GetString()).find("poison") != std::string::npos);
}

TEST_CASE("entries left pending by a dead consumer are claimed and handled") {
  RedisServer redis;
  auto options = fast_options(redis);
  options.claim_min_idle = 300ms;
  auto bus = make_bus(options);
  for (int i = 0; i < 3; ++i) REQUIRE(bus->publish("work", "p", number(i)));
  // A consumer of the group reads three entries and dies without acknowledging.
  const std::string group = "t:group:svc:workers:work";
  REQUIRE(redis.command({"XGROUP", "CREATE", "t:events:work", group, "0"}).str == "OK");
  auto taken = redis.command({"XREADGROUP", "GROUP", group, "dead-consumer", "COUNT", "10", "STREAMS",
                              "t:events:work", ">"});
  REQUIRE(taken.elements.size() == 1);
  REQUIRE(taken.elements[0].elements[1].elements.size() == 3);
  Collector c;
  SubscribeOptions so;
  so.group = "workers";
  so.consumer = "alive";
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(bus->subscribe("svc", "work", c.handler(), so));
  REQUIRE(wait_until([&] { return c.size() == 3; }));
  CHECK(std::chrono::steady_clock::now() - start >= 250ms);  // only once they were idle long enough
  CHECK(c.numbers() == std::vector<std::int64_t>{0, 1, 2});
  REQUIRE(wait_until([&] { return redis.command({"XPENDING", "t:events:work", group}).elements[0].integer == 0; }));
  CHECK(counter(bus->health(), "reclaimed") == 3);
}

TEST_CASE("a consumer that comes back under its name first handles what it had read but not acknowledged") {
  RedisServer redis;
  auto options = fast_options(redis);  // claim_min_idle stays 30 s: this is not a reclaim
  auto bus = make_bus(options);
  for (int i = 0; i < 4; ++i) REQUIRE(bus->publish("jobs", "p", number(i)));
  const std::string group = "t:group:svc:g:jobs";
  REQUIRE(redis.command({"XGROUP", "CREATE", "t:events:jobs", group, "0"}).str == "OK");
  // "worker-1" read two entries, then its process died.
  auto taken = redis.command({"XREADGROUP", "GROUP", group, "worker-1", "COUNT", "2", "STREAMS", "t:events:jobs", ">"});
  REQUIRE(taken.elements[0].elements[1].elements.size() == 2);
  Collector c;
  SubscribeOptions so;
  so.group = "g";
  so.consumer = "worker-1";
  REQUIRE(bus->subscribe("svc", "jobs", c.handler(), so));
  REQUIRE(wait_until([&] { return c.size() == 4; }, 3s));  // well before any claim
  CHECK(c.numbers() == std::vector<std::int64_t>{0, 1, 2, 3});
  REQUIRE(wait_until([&] { return redis.command({"XPENDING", "t:events:jobs", group}).elements[0].integer == 0; }));
  CHECK(counter(bus->health(), "reclaimed") == 0);
}

TEST_CASE("publish fails fast while Redis is down; subscribers reconnect and lose no acknowledged event") {
  RedisServer redis({.durable = true, .password = ""});
  auto options = fast_options(redis);
  auto publisher = make_bus(options);
  auto subscriber = make_bus(options);
  Collector c;
  SubscribeOptions so;
  so.group = "durable";
  REQUIRE(subscriber->subscribe("keeper", "stream.*", c.handler(), so));

  std::mutex mutex;
  std::vector<std::int64_t> acknowledged;
  std::vector<std::string> error_codes;
  std::atomic<bool> stop{false};
  std::atomic<int> next{0};
  std::thread producer([&] {
    while (!stop.load() && next.load() < 3000) {
      const int n = next.load();
      auto id = publisher->publish("stream.data", "producer", number(n));
      std::lock_guard lock(mutex);
      if (id) {
        acknowledged.push_back(n);
        next.fetch_add(1);
      } else {
        error_codes.push_back(id.error().code);
        std::this_thread::sleep_for(5ms);
      }
    }
  });
  REQUIRE(wait_until([&] { return next.load() >= 500; }));
  redis.kill();  // mid-stream, like a crash
  REQUIRE(wait_until([&] {
    std::lock_guard lock(mutex);
    return error_codes.size() >= 3;
  }));
  // While down: a clear error, quickly.
  const auto t0 = std::chrono::steady_clock::now();
  auto refused = publisher->publish("stream.data", "producer", number(-1));
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == "bus_unavailable");
  CHECK(refused.error().message.find(std::to_string(redis.port())) != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - t0 < options.connect_timeout + 200ms);
  CHECK_FALSE(publisher->health()["connected"].GetBool());
  CHECK(publisher->health()["last_error"].IsString());
  std::this_thread::sleep_for(300ms);
  redis.restart();
  producer.join();
  {
    std::lock_guard lock(mutex);
    CHECK(acknowledged.size() == 3000);
    for (const auto& code : error_codes) CHECK(code == "bus_unavailable");
  }
  // Every acknowledged event arrives (at least once), after the reconnect.
  REQUIRE(wait_until([&] {
    auto got = c.numbers();
    return std::set<std::int64_t>(got.begin(), got.end()).size() == 3000;
  }, 30s));
  auto got = c.numbers();
  std::set<std::int64_t> unique(got.begin(), got.end());
  CHECK(*unique.begin() == 0);
  CHECK(*unique.rbegin() == 2999);
  CHECK(counter(subscriber->health(), "reconnects") >= 1);
  CHECK(counter(publisher->health(), "publish_errors") >= 3);
  REQUIRE(wait_until([&] { return publisher->health()["connected"].GetBool(); }));
  auto subs = subscriber->subscriber_health("keeper");
  CHECK(counter(subs[0], "reconnects") >= 1);
  CHECK(subs[0]["connected"].GetBool());
}

TEST_CASE("a bus created while Redis is unreachable reports it and recovers") {
  std::unique_ptr<RedisServer> redis = std::make_unique<RedisServer>();
  const int port = redis->port();
  auto options = fast_options(*redis);
  redis->kill();
  auto bus = make_bus(options);  // not an error: starts disconnected
  CHECK_FALSE(bus->health()["connected"].GetBool());
  Collector c;
  auto sub = bus->subscribe("s", "x", c.handler(), {});
  REQUIRE_FALSE(sub);
  CHECK(sub.error().code == "bus_unavailable");
  CHECK(bus->subscriber_health("s").Size() == 0);
  redis->restart();
  CHECK(redis->port() == port);
  REQUIRE(wait_until([&] { return bus->health()["connected"].GetBool(); }));
  REQUIRE(bus->subscribe("s", "x", c.handler(), {}));
  REQUIRE(bus->publish("x", "p", number(1)));
  REQUIRE(wait_until([&] { return c.size() == 1; }));
}

TEST_CASE("wrong credentials fail bus creation with a clear error") {
  RedisServer redis({.durable = false, .password = "right-password"});
  auto options = fast_options(redis);
  auto good = make_redis_event_bus(options);
  REQUIRE(good);
  Collector c;
  REQUIRE((*good)->subscribe("s", "x", c.handler(), {}));
  REQUIRE((*good)->publish("x", "p", number(1)));
  REQUIRE(wait_until([&] { return c.size() == 1; }));
  options.url = "redis://:wrong-password@127.0.0.1:" + std::to_string(redis.port()) + "/0";
  auto bad = make_redis_event_bus(options);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == "redis_auth_failed");
  CHECK(bad.error().message.find("wrong-password") == std::string::npos);  // never echoes the secret
  CHECK(bad.error().message.find("***") != std::string::npos);
}

TEST_CASE("batched publish pipelines, keeps order, and trims streams approximately") {
  RedisServer redis;
  auto options = fast_options(redis);
  options.max_stream_length = 100;
  auto bus = make_bus(options);
  Collector c;
  REQUIRE(bus->subscribe("s", "bulk.*", c.handler(), {}));
  std::vector<Json> payloads;
  for (int i = 0; i < 50; ++i) payloads.push_back(number(i));
  std::vector<EventDraft> drafts;
  for (int i = 0; i < 50; ++i) drafts.push_back({i % 2 ? "bulk.odd" : "bulk.even", payloads[static_cast<std::size_t>(i)]});
  auto ids = bus->publish_batch("batcher", drafts);
  REQUIRE(ids);
  REQUIRE(ids->size() == 50);
  REQUIRE(wait_until([&] { return c.size() == 50; }));
  CHECK(redis.command({"XLEN", "t:events:bulk.odd"}).integer == 25);
  // An invalid topic anywhere publishes nothing.
  Json one = number(1);
  auto bad = bus->publish_batch("batcher", {{"bulk.odd", one}, {"bad topic", one}});
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == "invalid_topic");
  CHECK(redis.command({"XLEN", "t:events:bulk.odd"}).integer == 25);
  // MAXLEN ~ 100: the stream stays near the bound.
  for (int r = 0; r < 40; ++r) REQUIRE(bus->publish_batch("batcher", drafts));
  const auto len = redis.command({"XLEN", "t:events:bulk.odd"}).integer;
  CHECK(len >= 100);
  CHECK(len < 100 + 25 * 40);
  CHECK(len <= 300);
}

TEST_CASE("unsubscribe removes a private group; cancel from inside a handler works") {
  RedisServer redis;
  std::atomic<int> calls{0};
  Collector c;
  auto bus = make_bus(fast_options(redis));
  auto id = bus->subscribe("s", "private", c.handler(), {});
  REQUIRE(id);
  REQUIRE(bus->publish("private", "p", number(1)));
  REQUIRE(wait_until([&] { return c.size() == 1; }));
  CHECK(redis.command({"XINFO", "GROUPS", "t:events:private"}).elements.size() == 1);
  const auto t0 = std::chrono::steady_clock::now();
  bus->unsubscribe(*id);
  CHECK(std::chrono::steady_clock::now() - t0 < 400ms);  // does not wait out XREADGROUP BLOCK
  CHECK(redis.command({"XINFO", "GROUPS", "t:events:private"}).elements.empty());

  auto self = std::make_shared<Subscription>();
  EventSubscriber subscriber(bus, "self");
  auto sub = subscriber.subscribe("self.cancel", [&, self](const Event&) {
    if (++calls == 2) self->cancel();
  });
  REQUIRE(sub);
  *self = *sub;
  for (int i = 0; i < 10; ++i) REQUIRE(bus->publish("self.cancel", "p", number(i)));
  REQUIRE(wait_until([&] { return bus->subscriber_health("self").Size() == 0; }));
  std::this_thread::sleep_for(100ms);
  CHECK(calls == 2);
  bus->shutdown();
  CHECK(bus->publish("x", "p", number(1)).error().code == "bus_stopped");
}

TEST_CASE("Redis bus: handles only with their grants, audited otherwise") {
  RedisServer redis;
  check_handles_need_grants(make_bus(fast_options(redis)));
}

TEST_CASE("Redis bus: source stamped by the host, host publishes as core, health shows streams") {
  RedisServer redis;
  check_source_stamping_and_delivery(make_bus(fast_options(redis)));
}

TEST_CASE("two hosts on one Redis see each other's events; the health check shows a lost connection") {
  RedisServer redis;
  auto bus_a = make_bus(fast_options(redis));
  auto bus_b = make_bus(fast_options(redis));
  auto writer = std::make_shared<ProbeState>();
  auto reader = std::make_shared<ProbeState>();
  testing::TestClient host_a(std::make_unique<Probe>("writer", CapabilitySet{Capability::EVENTS_PUB}, writer),
                             client_options({Capability::EVENTS_PUB}, bus_a));
  testing::TestClient host_b(std::make_unique<Probe>("reader", CapabilitySet{Capability::EVENTS_SUB}, reader, "x.*"),
                             client_options({Capability::EVENTS_SUB}, bus_b));
  REQUIRE(writer->publisher != nullptr);
  for (int i = 0; i < 20; ++i) REQUIRE(writer->publisher->publish("x.y", number(i)));
  REQUIRE(wait_until([&] { return reader->count() == 20; }));
  for (const auto& e : reader->events()) CHECK(e.source == "writer");
  auto health = host_b.get("/health");
  CHECK(health.status == 200);
  auto doc = parse_json(health.body);
  CHECK(std::string(doc["checks"]["events"]["bus"].GetString()) == "redis");
  CHECK(doc["checks"]["events"]["subscriptions"][0]["streams"].Size() == 1);
  redis.kill();
  REQUIRE(wait_until([&] { return !bus_b->health()["connected"].GetBool(); }));
  health = host_b.get("/health");
  doc = parse_json(health.body);
  CHECK(std::string(doc["status"].GetString()) == "degraded");
  CHECK(std::string(doc["checks"]["events"]["status"].GetString()) == "error");
  CHECK(doc["checks"]["events"]["last_error"].IsString());
  // The reason is the bus's own verdict: since when, and why.
  REQUIRE(doc["checks"]["events"]["reason"].IsString());
  CHECK(std::string(doc["checks"]["events"]["reason"].GetString()).starts_with("event bus unreachable since "));
}

#ifdef EVENT_PEER
TEST_CASE("two processes on one Redis see each other's events") {
  RedisServer redis;
  auto bus = make_bus(fast_options(redis, "x:"));
  // Another process publishes; this one receives with the other's source.
  Collector c;
  REQUIRE(bus->subscribe("here", "peer.*", c.handler(), {}));
  const std::string publish_cmd = std::string(EVENT_PEER) + " publish " + redis.url() + " x: 25";
  FILE* pub = ::popen(publish_cmd.c_str(), "r");
  REQUIRE(pub != nullptr);
  std::vector<std::string> peer_ids;
  char line[4096];
  while (std::fgets(line, sizeof line, pub) != nullptr) peer_ids.emplace_back(line, std::strcspn(line, "\n"));
  CHECK(::pclose(pub) == 0);
  REQUIRE(peer_ids.size() == 25);
  REQUIRE(wait_until([&] { return c.size() == 25; }));
  const auto received_here = c.events();
  for (std::size_t i = 0; i < 25; ++i) {
    CHECK(received_here[i].id == peer_ids[i]);
    CHECK(received_here[i].source == "peer_pub");
  }
  // This process publishes; the other receives.
  const std::string subscribe_cmd = std::string(EVENT_PEER) + " subscribe " + redis.url() + " x: 10 10000";
  FILE* sub = ::popen(subscribe_cmd.c_str(), "r");
  REQUIRE(sub != nullptr);
  REQUIRE(std::fgets(line, sizeof line, sub) != nullptr);
  CHECK(std::string(line) == "ready\n");
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) ids.push_back(bus->publish("cross.hello", "here", number(i)).value());
  std::vector<std::string> received;
  while (std::fgets(line, sizeof line, sub) != nullptr) received.emplace_back(line);
  CHECK(::pclose(sub) == 0);
  REQUIRE(received.size() == 10);
  for (std::size_t i = 0; i < 10; ++i) {
    auto doc = parse_json(received[i]);
    CHECK(std::string(doc["id"].GetString()) == ids[i]);
    CHECK(std::string(doc["source"].GetString()) == "here");
    CHECK(doc["payload"]["n"].GetInt() == static_cast<int>(i));
  }
}
#endif
