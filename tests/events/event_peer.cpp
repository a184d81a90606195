// A second process for the cross-process Redis tests: an ExtensionHost on the
// Redis bus with one linked-in extension.
//
//   event_peer publish URL PREFIX COUNT
//       extension "peer_pub" (EVENTS_PUB) publishes COUNT events on peer.ping
//       ({"n": i}) and prints each id.
//   event_peer subscribe URL PREFIX COUNT TIMEOUT_MS
//       extension "peer_sub" (EVENTS_SUB) subscribes to "cross.*", prints
//       "ready", then one line per event (Event::to_json); exits 0 after COUNT
//       events, 1 on timeout.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "ordinaut/extension.hpp"
#include "ordinaut/host.hpp"
#include "ordinaut/redis_bus.hpp"

using namespace ordinaut;

namespace {

const EventPublisher* g_publisher = nullptr;
std::atomic<long> g_seen{0};

class Peer final : public Extension {
 public:
  explicit Peer(bool publisher) : publisher_(publisher) {}
  ExtensionInfo info() const override {
    return {publisher_ ? "peer_pub" : "peer_sub", "Peer", "1.0.0", "cross-process event peer"};
  }
  CapabilitySet requested_capabilities() const override {
    return {publisher_ ? Capability::EVENTS_PUB : Capability::EVENTS_SUB};
  }
  std::optional<Router> setup(SetupContext& context) override {
    if (publisher_) {
      g_publisher = &context.events_publisher();
    } else {
      auto sub = context.events_subscriber().subscribe("cross.*", [](const Event& e) {
        std::printf("%s\n", e.to_json().c_str());
        std::fflush(stdout);
        g_seen.fetch_add(1);
      });
      if (!sub) throw std::runtime_error(sub.error().message);
    }
    return Router{};
  }

 private:
  bool publisher_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fputs("usage: event_peer publish|subscribe URL PREFIX COUNT [TIMEOUT_MS]\n", stderr);
    return 2;
  }
  const std::string mode = argv[1];
  const long count = std::atol(argv[4]);
  RedisBusOptions bus_options;
  bus_options.url = argv[2];
  bus_options.key_prefix = argv[3];
  auto bus = make_redis_event_bus(bus_options);
  if (!bus) {
    std::fprintf(stderr, "event_peer: %s\n", bus.error().message.c_str());
    return 2;
  }
  HostOptions options;
  options.read_environment = false;
  options.use_registered_extensions = false;
  options.event_bus = *bus;
  options.log_sink = [](const LogRecord& r) {
    if (r.level == LogLevel::error) std::fprintf(stderr, "event_peer: %s\n", format_log_json(r).c_str());
  };
  ExtensionHost host(options);
  const bool publisher = mode == "publish";
  host.add_linked(publisher ? "peer_pub" : "peer_sub", [publisher] { return std::make_unique<Peer>(publisher); },
                  CapabilitySet{publisher ? Capability::EVENTS_PUB : Capability::EVENTS_SUB}, true);
  if (!host.start()) return 2;
  int rc = 0;
  if (publisher) {
    if (g_publisher == nullptr) return 2;
    for (long i = 0; i < count; ++i) {
      Json payload = json::object();
      payload.AddMember("n", static_cast<std::int64_t>(i), payload.GetAllocator());
      auto id = g_publisher->publish("peer.ping", payload);
      if (!id) {
        std::fprintf(stderr, "event_peer: %s\n", id.error().message.c_str());
        return 1;
      }
      std::printf("%s\n", id->c_str());
    }
  } else {
    std::printf("ready\n");
    std::fflush(stdout);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(argc > 5 ? std::atol(argv[5]) : 10000);
    while (g_seen.load() < count && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    rc = g_seen.load() >= count ? 0 : 1;
  }
  host.shutdown();
  (*bus)->shutdown();
  return rc;
}
