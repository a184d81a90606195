// Event bus benchmarks (not tests): prints one JSON line per measurement.
//
//   bench_events memory [events] [publishers] [subscribers] [poll_ns]
//   bench_events memory-latency [events] [gap_us] [poll_ns]  publish → handler, one at a time
//   bench_events memory-baseline [events]             a bare hand-off, for comparison
//   bench_events redis-publish URL threads events     one publish() per event
//   bench_events redis-batch URL batch events         publish_batch() of `batch`
//   bench_events redis-latency URL events             publish → handler, one at a time
//
// run.sh starts a redis-server and runs these beside redis-benchmark.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "ordinaut/events.hpp"
#include "ordinaut/json.hpp"
#include "ordinaut/redis_bus.hpp"

using namespace ordinaut;
using Clock = std::chrono::steady_clock;

namespace {

Json small_payload(std::int64_t n) {
  Json doc = json::object();
  doc.AddMember("n", n, doc.GetAllocator());
  doc.AddMember("status", "done", doc.GetAllocator());
  return doc;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int bench_memory(long events, int publishers, int subscribers, long poll_ns) {
  MemoryBusOptions options{.queue_capacity = 1 << 20, .max_attempts = 1, .retry_delay = std::chrono::milliseconds(1),
                           .drain_timeout = std::chrono::milliseconds(60000)};
  if (poll_ns >= 0) options.poll_interval = std::chrono::nanoseconds(poll_ns);
  auto bus = make_memory_event_bus(options);
  std::atomic<long> handled{0};
  for (int s = 0; s < subscribers; ++s) {
    auto id = bus->subscribe("bench", "bench.*", [&](const Event& e) {
      if (e.payload) handled.fetch_add(1, std::memory_order_relaxed);
    }, {});
    if (!id) return std::fprintf(stderr, "%s\n", id.error().message.c_str()), 1;
  }
  const long per_publisher = events / publishers;
  const long total = per_publisher * publishers * subscribers;
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int p = 0; p < publishers; ++p) {
    threads.emplace_back([&, p] {
      Json payload = small_payload(p);
      for (long i = 0; i < per_publisher; ++i) (void)bus->publish("bench.event", "bench", payload);
    });
  }
  for (auto& t : threads) t.join();
  const double publish_s = seconds_since(start);
  while (handled.load() < total) std::this_thread::yield();
  const double s = seconds_since(start);
  const auto poll = std::chrono::duration_cast<std::chrono::nanoseconds>(options.poll_interval).count();
  std::printf(R"({"bench":"memory publish->handler","publishers":%d,"subscribers":%d,"poll_ns":%lld,"events":%ld,)"
              R"("deliveries":%ld,"seconds":%.3f,"deliveries_per_s":%.0f,"publish_per_s":%.0f})" "\n",
              publishers, subscribers, static_cast<long long>(poll), per_publisher * publishers, total, s, total / s,
              per_publisher * publishers / publish_s);
  return 0;
}

// Baseline for bench_memory: the simplest correct hand-off of the same work,
// with none of the bus's features (topics, patterns, bounds, counters,
// retries): one subscriber, an Event built with make_shared (its payload
// shared, not copied: the baseline does less), a std::mutex + std::deque + condition_variable queue whose
// worker takes everything queued at once and calls a std::function.
int bench_memory_baseline(long events) {
  struct Channel {
    std::mutex mutex;
    std::condition_variable ready;
    std::deque<std::shared_ptr<const Event>> items;
    bool done = false;
  } channel;
  std::atomic<long> handled{0};
  std::function<void(const Event&)> handler = [&](const Event& e) {
    if (e.payload) handled.fetch_add(1, std::memory_order_relaxed);
  };
  std::thread worker([&] {
    std::deque<std::shared_ptr<const Event>> batch;
    while (true) {
      {
        std::unique_lock lock(channel.mutex);
        channel.ready.wait(lock, [&] { return !channel.items.empty() || channel.done; });
        if (channel.items.empty()) return;
        batch.swap(channel.items);
      }
      for (const auto& e : batch) handler(*e);
      batch.clear();
    }
  });
  const auto payload = std::make_shared<const Json>(small_payload(0));
  std::uint64_t sequence = 0;
  const auto start = Clock::now();
  for (long i = 0; i < events; ++i) {
    auto event = std::make_shared<Event>();
    event->time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
    event->id = fmt::format("{}-{}", event->time_ms, sequence++);
    event->topic = "bench.event";
    event->source = "bench";
    event->payload = payload;
    {
      std::lock_guard lock(channel.mutex);
      channel.items.push_back(std::move(event));
    }
    channel.ready.notify_one();
  }
  const double publish_s = seconds_since(start);
  while (handled.load() < events) std::this_thread::yield();
  const double s = seconds_since(start);
  {
    std::lock_guard lock(channel.mutex);
    channel.done = true;
  }
  channel.ready.notify_one();
  worker.join();
  std::printf(R"({"bench":"baseline: mutex+deque+condvar hand-off","publishers":1,"subscribers":1,"events":%ld,)"
              R"("deliveries":%ld,"seconds":%.3f,"deliveries_per_s":%.0f,"publish_per_s":%.0f})" "\n",
              events, events, s, events / s, events / publish_s);
  return 0;
}

std::shared_ptr<EventBus> redis_bus(const std::string& url, const std::string& prefix) {
  RedisBusOptions options;
  options.url = url;
  options.key_prefix = prefix;
  auto bus = make_redis_event_bus(options);
  if (!bus) {
    std::fprintf(stderr, "bench_events: %s\n", bus.error().message.c_str());
    std::exit(1);
  }
  return *bus;
}

int bench_redis_publish(const std::string& url, int threads_count, long events) {
  auto bus = redis_bus(url, "bench:");
  (void)bus->publish("warmup", "bench", small_payload(0));
  const long per_thread = events / threads_count;
  std::atomic<long> errors{0};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < threads_count; ++t) {
    threads.emplace_back([&] {
      Json payload = small_payload(1);
      for (long i = 0; i < per_thread; ++i) {
        if (!bus->publish("bench.event", "bench", payload)) errors.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  const double s = seconds_since(start);
  std::printf(R"({"bench":"redis publish","threads":%d,"events":%ld,"errors":%ld,"seconds":%.3f,"events_per_s":%.0f})"
              "\n", threads_count, per_thread * threads_count, errors.load(), s, per_thread * threads_count / s);
  bus->shutdown();
  return errors.load() == 0 ? 0 : 1;
}

int bench_redis_batch(const std::string& url, int batch, long events) {
  auto bus = redis_bus(url, "bench:");
  std::vector<Json> payloads;
  for (int i = 0; i < batch; ++i) payloads.push_back(small_payload(i));
  std::vector<EventDraft> drafts;
  for (int i = 0; i < batch; ++i) drafts.push_back({"bench.batch", payloads[static_cast<std::size_t>(i)]});
  (void)bus->publish_batch("bench", drafts);
  const long rounds = events / batch;
  long errors = 0;
  const auto start = Clock::now();
  for (long r = 0; r < rounds; ++r) {
    if (!bus->publish_batch("bench", drafts)) ++errors;
  }
  const double s = seconds_since(start);
  std::printf(R"({"bench":"redis publish_batch","batch":%d,"events":%ld,"errors":%ld,"seconds":%.3f,)"
              R"("events_per_s":%.0f})" "\n", batch, rounds * batch, errors, s, rounds * batch / s);
  bus->shutdown();
  return errors == 0 ? 0 : 1;
}

// Publish -> handler latency, one event in flight: each event is published
// `gap_us` after the previous one was handled (0: at once; a longer gap lets
// an in-memory worker go to sleep).
int bench_latency(EventBus& bus, const char* name, long events, long gap_us) {
  std::atomic<long> seen{0};
  std::vector<double> micros;
  micros.reserve(static_cast<std::size_t>(events));
  std::atomic<std::int64_t> sent_ns{0};
  auto id = bus.subscribe("bench", "bench.latency", [&](const Event&) {
    const auto now = Clock::now().time_since_epoch().count();
    micros.push_back(static_cast<double>(now - sent_ns.load()) / 1000.0);
    seen.fetch_add(1, std::memory_order_release);
  }, {});
  if (!id) return std::fprintf(stderr, "%s\n", id.error().message.c_str()), 1;
  Json payload = small_payload(0);
  for (long i = 0; i < events; ++i) {
    if (gap_us > 0) {
      const auto until = Clock::now() + std::chrono::microseconds(gap_us);
      while (Clock::now() < until) {
      }
    }
    sent_ns.store(Clock::now().time_since_epoch().count());
    if (!bus.publish("bench.latency", "bench", payload)) return 1;
    while (seen.load(std::memory_order_acquire) <= i) std::this_thread::yield();
  }
  std::sort(micros.begin(), micros.end());
  auto pct = [&](double p) { return micros[static_cast<std::size_t>(p * static_cast<double>(micros.size() - 1))]; };
  std::printf(R"({"bench":"%s publish->handler latency","gap_us":%ld,"events":%ld,"p50_us":%.1f,"p90_us":%.1f,)"
              R"("p99_us":%.1f,"max_us":%.1f})" "\n", name, gap_us, events, pct(0.5), pct(0.9), pct(0.99), micros.back());
  bus.shutdown();
  return 0;
}

int bench_redis_latency(const std::string& url, long events) {
  auto bus = redis_bus(url, "bench:");
  return bench_latency(*bus, "redis", events, 0);
}

int bench_memory_latency(long events, long gap_us, long poll_ns) {
  MemoryBusOptions options;
  if (poll_ns >= 0) options.poll_interval = std::chrono::nanoseconds(poll_ns);
  auto bus = make_memory_event_bus(options);
  return bench_latency(*bus, "memory", events, gap_us);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto arg = [&](std::size_t i, long fallback) { return i < args.size() ? std::atol(args[i].c_str()) : fallback; };
  if (!args.empty() && args[0] == "memory") {
    return bench_memory(arg(1, 2000000), static_cast<int>(arg(2, 1)), static_cast<int>(arg(3, 1)), arg(4, -1));
  }
  if (!args.empty() && args[0] == "memory-latency") return bench_memory_latency(arg(1, 20000), arg(2, 0), arg(3, -1));
  if (!args.empty() && args[0] == "memory-baseline") return bench_memory_baseline(arg(1, 2000000));
  if (args.size() >= 2 && args[0] == "redis-publish") {
    return bench_redis_publish(args[1], static_cast<int>(arg(2, 1)), arg(3, 100000));
  }
  if (args.size() >= 2 && args[0] == "redis-batch") {
    return bench_redis_batch(args[1], static_cast<int>(arg(2, 100)), arg(3, 1000000));
  }
  if (args.size() >= 2 && args[0] == "redis-latency") return bench_redis_latency(args[1], arg(2, 10000));
  std::fputs("usage: bench_events memory [events] [publishers] [subscribers] [poll_ns]\n"
             "       bench_events memory-latency [events] [gap_us] [poll_ns]\n"
             "       bench_events memory-baseline [events]\n"
             "       bench_events redis-publish URL threads events\n"
             "       bench_events redis-batch URL batch events\n"
             "       bench_events redis-latency URL events\n", stderr);
  return 2;
}
