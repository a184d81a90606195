// The bus's own publish rate, for comparison with POST /ext/events_demo/publish/{name}
// (not a test; run.sh prints the figures side by side).
//
//   bench_publish memory THREADS EVENTS
//   bench_publish redis URL THREADS EVENTS
//
// The bus gets the subscriber it has in the server: events_demo's history
// recorder on "events_demo.*". Each thread publishes EVENTS/THREADS events of
// the body the HTTP benchmark posts, parsed once (the HTTP path parses each).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "ordinaut/events.hpp"
#include "ordinaut/json.hpp"
#include "ordinaut/redis_bus.hpp"

int main(int argc, char** argv) {
  using Clock = std::chrono::steady_clock;
  if (argc < 4) {
    std::fprintf(stderr, "usage: bench_publish memory THREADS EVENTS | redis URL THREADS EVENTS\n");
    return 2;
  }
  const std::string kind = argv[1];
  const bool redis = kind == "redis";
  const int threads = std::atoi(argv[redis ? 3 : 2]);
  const long events = std::atol(argv[redis ? 4 : 3]);
  std::shared_ptr<ordinaut::EventBus> bus;
  if (redis) {
    ordinaut::RedisBusOptions options;
    options.url = argv[2];
    auto made = ordinaut::make_redis_event_bus(options);
    if (!made) {
      std::fprintf(stderr, "redis bus: %s\n", made.error().message.c_str());
      return 1;
    }
    bus = *made;
  } else {
    bus = ordinaut::make_memory_event_bus();
  }
  std::atomic<long> handled{0};
  auto sub = bus->subscribe("events_demo", "events_demo.*", [&](const ordinaut::Event&) { ++handled; }, {});
  if (!sub) return 1;
  auto payload = ordinaut::json::parse(R"({"n":1,"text":"benchmark"})");
  std::atomic<long> failed{0};
  const auto start = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (long i = 0; i < events / threads; ++i) {
        if (!bus->publish("events_demo.bench", "events_demo", *payload)) ++failed;
      }
    });
  }
  for (auto& t : pool) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const long published = (events / threads) * threads;
  std::printf("{\"bus\":\"%s\",\"threads\":%d,\"events\":%ld,\"failed\":%ld,\"seconds\":%.3f,\"publish_per_s\":%.0f}\n",
              kind.c_str(), threads, published, failed.load(), seconds, published / seconds);
  bus->unsubscribe(*sub);
  bus->shutdown();
  return failed.load() == 0 ? 0 : 1;
}
