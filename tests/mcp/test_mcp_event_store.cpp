// mcp_http's EventStore on its own: increasing ids, per-stream replay, the
// count and byte bounds (oldest first, so a replay is complete or refused),
// and the statuses of bad Last-Event-IDs.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <string>

#include "event_store.hpp"

using ordinaut::mcp_http::EventLimits;
using ordinaut::mcp_http::EventStore;
using ordinaut::mcp_http::kEventOverhead;
using Status = EventStore::Status;

TEST_CASE("ids increase over the session; a replay holds the later events of that stream only") {
  EventStore store;
  const auto a = store.new_stream();
  const auto b = store.new_stream();
  CHECK(a != b);
  const auto a1 = store.append(a, "");
  const auto b1 = store.append(b, R"({"b":1})");
  const auto a2 = store.append(a, R"({"a":2})");
  const auto a3 = store.append(a, R"({"a":3})");
  CHECK(a1 < b1);
  CHECK(b1 < a2);
  CHECK(a2 < a3);
  CHECK(store.last_id() == a3);

  auto r = store.after(std::to_string(a1));
  REQUIRE(r.status == Status::ok);
  CHECK(r.stream == a);
  REQUIRE(r.events.size() == 2);
  CHECK(r.events[0].id == a2);
  CHECK(r.events[0].data == R"({"a":2})");
  CHECK(r.events[1].id == a3);
  CHECK(store.after(std::to_string(a3)).events.empty());
  auto rb = store.after(std::to_string(b1));
  CHECK(rb.stream == b);
  CHECK(rb.events.empty());
}

TEST_CASE("bad ids: malformed, never issued, evicted") {
  EventStore store(EventLimits{.max_events = 2, .max_bytes = 1 << 20});
  const auto s = store.new_stream();
  for (int i = 0; i < 5; ++i) store.append(s, "{}");
  CHECK(store.after("").status == Status::malformed);
  CHECK(store.after("12a").status == Status::malformed);
  CHECK(store.after("-1").status == Status::malformed);
  CHECK(store.after("99999999999999999999999").status == Status::malformed);
  CHECK(store.after("0").status == Status::unknown);
  CHECK(store.after("6").status == Status::unknown);
  CHECK(store.after("3").status == Status::evicted);
  CHECK(store.after("4").status == Status::ok);
  const auto evicted = store.after("1");
  CHECK(store.explain(evicted, "1").find("last 2 events") != std::string::npos);
  CHECK(store.explain(store.after("x"), "x").find("not an event id") != std::string::npos);
  CHECK(store.explain(store.after("7"), "7").find("never issued") != std::string::npos);
}

TEST_CASE("bounded by count and by bytes, oldest first") {
  EventStore by_count(EventLimits{.max_events = 10, .max_bytes = 1 << 20});
  const auto s = by_count.new_stream();
  for (int i = 0; i < 1000; ++i) by_count.append(s, std::string(100, 'x'));
  CHECK(by_count.size() == 10);
  CHECK(by_count.evicted() == 990);
  CHECK(by_count.after("990").status == Status::evicted);
  CHECK(by_count.after("991").events.size() == 9);

  const std::size_t budget = 10 * (100 + kEventOverhead) + 50;
  EventStore by_bytes(EventLimits{.max_events = 100000, .max_bytes = budget});
  const auto t = by_bytes.new_stream();
  for (int i = 0; i < 1000; ++i) {
    by_bytes.append(t, std::string(100, 'y'));
    CHECK(by_bytes.bytes() <= budget);
  }
  CHECK(by_bytes.size() == 10);

  // One event larger than the whole budget evicts everything, itself included:
  // no replay across it can be silently incomplete.
  const auto before = by_bytes.last_id();
  const auto big = by_bytes.append(t, std::string(budget + 1, 'z'));
  CHECK(by_bytes.size() == 0);
  CHECK(by_bytes.bytes() == 0);
  CHECK(by_bytes.after(std::to_string(before)).status == Status::evicted);
  CHECK(by_bytes.after(std::to_string(big)).status == Status::evicted);
  by_bytes.append(t, "{}");
  CHECK(by_bytes.size() == 1);
}

TEST_CASE("limits of 0 keep nothing but still issue ids") {
  EventStore off(EventLimits{.max_events = 0, .max_bytes = 1024});
  CHECK_FALSE(off.limits().enabled());
  const auto s = off.new_stream();
  CHECK(off.append(s, "{}") == 1);
  CHECK(off.append(s, "{}") == 2);
  CHECK(off.size() == 0);
  CHECK(off.after("1").status == Status::evicted);
}
