// mcp_http's SessionStore without a server: the total cap evicts the least
// recently used idle session, the per-address cap evicts that address's own,
// and busy sessions (a stream open, a call running) are never evicted.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "session.hpp"

using ordinaut::mcp_http::CallState;
using ordinaut::mcp_http::SessionStore;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<ordinaut::mcp_http::Session> open(SessionStore& store, const std::string& address) {
  return store.create("2025-11-25", {}, "test", address);
}

}  // namespace

TEST_CASE("a full store evicts the least recently used idle session") {
  SessionStore store(3, std::chrono::hours(1));
  auto a = open(store, "10.0.0.1");
  auto b = open(store, "10.0.0.2");
  auto c = open(store, "10.0.0.3");
  a->touch();  // b is now the least recently used
  auto d = open(store, "10.0.0.4");
  REQUIRE(d);
  CHECK(store.size() == 3);
  CHECK(store.find(b->id()) == nullptr);
  CHECK(b->closed());
  CHECK(store.find(a->id()) != nullptr);
  CHECK(store.evicted() == 1);
}

TEST_CASE("busy sessions are never evicted; a store of busy sessions refuses") {
  SessionStore store(2, std::chrono::hours(1));
  auto a = open(store, "10.0.0.1");
  auto b = open(store, "10.0.0.2");
  auto call = std::make_shared<CallState>();
  call->id = "1";
  REQUIRE(a->add_call(call));            // a call runs
  REQUIRE(b->claim_stream() != 0);       // a GET stream is open
  CHECK(open(store, "10.0.0.3") == nullptr);
  CHECK(store.size() == 2);
  a->remove_call("1");
  auto c = open(store, "10.0.0.3");
  REQUIRE(c);
  CHECK(store.find(a->id()) == nullptr);
  CHECK(store.find(b->id()) != nullptr);
}

TEST_CASE("one address beyond its cap evicts its own sessions, never another address's") {
  SessionStore store(100, std::chrono::hours(1), 3);
  auto other = open(store, "192.0.2.9");
  std::vector<std::shared_ptr<ordinaut::mcp_http::Session>> mine;
  for (int i = 0; i < 50; ++i) {
    mine.push_back(open(store, "192.0.2.1"));
    REQUIRE(mine.back());
    }
  CHECK(store.size_of("192.0.2.1") == 3);
  CHECK(store.size() == 4);
  CHECK(store.find(other->id()) != nullptr);
  // The three kept are the newest.
  for (int i = 47; i < 50; ++i) CHECK(store.find(mine[static_cast<std::size_t>(i)]->id()) != nullptr);
  CHECK(store.find(mine[0]->id()) == nullptr);
  // Removing and expiring keep the per-address count right.
  CHECK(store.remove(mine[49]->id()));
  CHECK(store.size_of("192.0.2.1") == 2);
  // All three busy: that address is refused, others are not.
  for (int i = 47; i < 49; ++i) REQUIRE(mine[static_cast<std::size_t>(i)]->claim_stream() != 0);
  REQUIRE(open(store, "192.0.2.1"));
  CHECK(store.size_of("192.0.2.1") == 3);
  auto latest = open(store, "192.0.2.1");  // evicts the only idle one: the one just made
  REQUIRE(latest);
  for (const auto& s : {mine[47], mine[48], latest}) CHECK(store.find(s->id()) != nullptr);
  REQUIRE(latest->claim_stream() != 0);
  CHECK(open(store, "192.0.2.1") == nullptr);
  CHECK(open(store, "192.0.2.2") != nullptr);
  // Sessions without an address have no per-address cap.
  for (int i = 0; i < 10; ++i) REQUIRE(open(store, ""));
  CHECK(store.size_of("") == 10);
}

TEST_CASE("sweep and close_all keep the per-address counts consistent") {
  SessionStore store(10, 1ms, 2);
  open(store, "a");
  open(store, "a");
  std::this_thread::sleep_for(5ms);
  CHECK(store.sweep() == 2);
  CHECK(store.size_of("a") == 0);
  REQUIRE(open(store, "a"));
  REQUIRE(open(store, "a"));
  store.close_all();
  CHECK(store.size() == 0);
  CHECK(store.size_of("a") == 0);
}
