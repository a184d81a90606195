// The in-memory bus when an allocation fails inside publish(): the exception
// reaches the publisher, the bus stays consistent and keeps working, and
// nothing leaks (the ASan run's LeakSanitizer checks that at exit). A program
// of its own, because it replaces the global operator new. No step depends on
// timing: waits end on their condition, and a failed check stops the bus
// before the objects its handlers use are destroyed.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "ordinaut/events.hpp"
#include "ordinaut/json.hpp"
#include "bus_support.hpp"
#include "wait.hpp"

namespace {

// The next allocation of exactly this many bytes throws std::bad_alloc.
std::atomic<std::size_t> fail_size{0};

}  // namespace

void* operator new(std::size_t size) {
  std::size_t armed = size;
  if (size != 0 && fail_size.load(std::memory_order_relaxed) == size && fail_size.compare_exchange_strong(armed, 0)) {
    throw std::bad_alloc();
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return ::operator new(size); }  // sanitizers replace it otherwise

// GCC cannot tell that these free what the operator new above malloc'ed.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

using namespace ordinaut;
using namespace std::chrono_literals;
using ordinaut_test::health_number;
using ordinaut_test::number;
using ordinaut_test::wait_until;

namespace {

// How long a wait may take before the test fails. Waits end as soon as their
// condition holds (a condition variable, not polling), so this is not a
// timing assumption: it only bounds how long a broken bus hangs the test.
constexpr auto kPatience = 60s;

struct Numbers {
  Numbers() { seen.reserve(4096); }  // so that handlers allocate nothing the test arms a failure for
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::int64_t> seen;
  EventHandler handler() {
    return [this](const Event& e) {
      {
        std::lock_guard lock(mutex);
        seen.push_back((*e.payload)["n"].GetInt64());
      }
      changed.notify_all();
    };
  }
  std::vector<std::int64_t> get() {
    std::lock_guard lock(mutex);
    return seen;
  }
  /// True once `count` events arrived; false after kPatience.
  bool wait_for(std::size_t count) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, kPatience, [&] { return seen.size() >= count; });
  }
};

// Runs `stop` when the test case ends, however it ends (a failed REQUIRE
// throws): the bus's threads call handlers that refer to the test's locals,
// so the bus must stop before those are destroyed.
class OnExit {
 public:
  explicit OnExit(std::function<void()> stop) : stop_(std::move(stop)) {}
  ~OnExit() { stop_(); }
  OnExit(const OnExit&) = delete;
  OnExit& operator=(const OnExit&) = delete;

 private:
  std::function<void()> stop_;
};

std::vector<std::int64_t> range(std::int64_t from, std::int64_t to) {
  std::vector<std::int64_t> out;
  for (auto i = from; i <= to; ++i) out.push_back(i);
  return out;
}

}  // namespace

TEST_CASE("a failed allocation while the event is stamped publishes nothing and loses nothing") {
  Numbers numbers;  // outlives the bus, whose threads call its handler
  auto bus = make_memory_event_bus();
  OnExit stop([&] { bus->shutdown(); });
  const std::string topic = "oom." + std::string(146, 't');  // 150 characters: a 151-byte allocation
  REQUIRE(bus->subscribe("s", "oom.*", numbers.handler(), {}));
  fail_size = topic.size() + 1;
  CHECK_THROWS_AS((void)bus->publish(topic, "p", number(1)), std::bad_alloc);
  CHECK(fail_size.load() == 0);  // the failure did happen where intended
  fail_size = 0;
  CHECK(health_number(*bus, "published") == 0);
  CHECK(health_number(*bus, "queued") == 0);
  // The bus goes on as if nothing happened.
  auto id = bus->publish(topic, "p", number(2));
  REQUIRE(id);
  CHECK(id->ends_with("-0"));  // the failed publish took no sequence number
  REQUIRE(numbers.wait_for(1));
  CHECK(numbers.get() == std::vector<std::int64_t>{2});
  bus->shutdown();
  CHECK(health_number(*bus, "delivered") == 1);
}

TEST_CASE("a ring that cannot grow: the queues before it have the event, the rest do not, all consistent") {
  // Subscriber "fast" drains its queue; subscriber "stuck" is held in event 0
  // until its 1024-slot ring is full, and the next publish must grow it.
  // Everything the handlers refer to is declared before the bus, and OnExit
  // opens the gate and stops the bus first, whatever ends the test.
  Numbers fast, stuck;
  std::mutex gate;
  std::unique_lock hold(gate);
  std::atomic<bool> first{true};
  auto bus = make_memory_event_bus({.queue_capacity = 10000, .max_attempts = 1, .retry_delay = 1ms,
                                    .drain_timeout = 5000ms});
  OnExit stop([&] {
    fail_size = 0;
    if (hold.owns_lock()) hold.unlock();
    bus->shutdown();
  });
  REQUIRE(bus->subscribe("fast", "x", fast.handler(), {}));
  REQUIRE(bus->subscribe("stuck", "x", [&](const Event& e) {
    if (first.exchange(false)) std::lock_guard wait_for_gate(gate);
    stuck.handler()(e);
  }, {}));
  REQUIRE(bus->publish("x", "p", number(0)));
  REQUIRE(wait_until([&] { return !first.load(); }, kPatience));
  for (int i = 1; i <= 1024; ++i) REQUIRE(bus->publish("x", "p", number(i)));
  // Under load "fast" may lag 1024 events behind; its own ring would then need
  // to grow at the next publish and take the armed failure meant for "stuck".
  // Arm it only once "fast" has drained: then only "stuck"'s ring grows.
  REQUIRE(fast.wait_for(1025));
  fail_size = 2048 * sizeof(void*);  // the slots of the doubled ring
  CHECK_THROWS_AS((void)bus->publish("x", "p", number(1025)), std::bad_alloc);
  CHECK(fail_size.load() == 0);
  fail_size = 0;
  CHECK(health_number(*bus, "published") == 1026);  // it reached a subscriber
  REQUIRE(fast.wait_for(1026));  // woken despite the exception
  CHECK(fast.get() == range(0, 1025));
  REQUIRE(bus->publish("x", "p", number(1026)));  // this time the ring grows
  hold.unlock();
  REQUIRE(stuck.wait_for(1026));
  auto expected = range(0, 1024);
  expected.push_back(1026);
  CHECK(stuck.get() == expected);  // 1025 never reached it, and nothing else is missing
  REQUIRE(fast.wait_for(1027));
  bus->shutdown();
  CHECK(health_number(*bus, "delivered") == 1027 + 1026);
  CHECK(health_number(*bus, "dropped") == 0);
}
