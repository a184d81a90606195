// The event contract as extensions see it through the host, checked against
// any bus: capability handles, source stamping, host publishing, inter-extension
// delivery, health. Included by the memory and the Redis test files.
#pragma once

#include <doctest/doctest.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ordinaut/events.hpp"
#include "ordinaut/extension.hpp"
#include "ordinaut/host.hpp"
#include "ordinaut/json.hpp"
#include "ordinaut/testing.hpp"
#include "wait.hpp"

namespace ordinaut_test {

using namespace ordinaut;

/// What a Probe extension saw; shared with the test.
struct ProbeState {
  std::mutex mutex;
  std::vector<Event> received;
  std::string publish_denied;    // CapabilityError message, if any
  std::string subscribe_denied;
  std::string subscribe_error;   // Result error of subscribe(), if any
  const EventPublisher* publisher = nullptr;

  std::size_t count() {
    std::lock_guard lock(mutex);
    return received.size();
  }
  std::vector<Event> events() {
    std::lock_guard lock(mutex);
    return received;
  }
};

/// An extension that asks for both event handles in setup() and, when given a
/// pattern, subscribes to it.
class Probe final : public Extension {
 public:
  Probe(std::string id, CapabilitySet requested, std::shared_ptr<ProbeState> state, std::string pattern = {},
        SubscribeOptions options = {})
      : id_(std::move(id)), requested_(requested), state_(std::move(state)), pattern_(std::move(pattern)),
        options_(std::move(options)) {}

  ExtensionInfo info() const override { return {id_, "Probe", "1.0.0", "event contract probe"}; }
  CapabilitySet requested_capabilities() const override { return requested_; }
  std::optional<Router> setup(SetupContext& context) override {
    try {
      state_->publisher = &context.events_publisher();
    } catch (const CapabilityError& e) {
      state_->publish_denied = e.what();
    }
    try {
      const EventSubscriber& subscriber = context.events_subscriber();
      if (!pattern_.empty()) {
        auto state = state_;
        auto sub = subscriber.subscribe(pattern_, [state](const Event& e) {
          std::lock_guard lock(state->mutex);
          state->received.push_back(e);
        }, options_);
        if (!sub) state_->subscribe_error = sub.error().code + ": " + sub.error().message;
      }
    } catch (const CapabilityError& e) {
      state_->subscribe_denied = e.what();
    }
    return Router{};
  }

 private:
  std::string id_;
  CapabilitySet requested_;
  std::shared_ptr<ProbeState> state_;
  std::string pattern_;
  SubscribeOptions options_;
};

inline testing::TestClientOptions client_options(CapabilitySet grants, std::shared_ptr<EventBus> bus = nullptr) {
  testing::TestClientOptions options;
  options.grants = grants;
  options.event_bus = std::move(bus);
  return options;
}

inline Json parse_json(std::string_view text) { return std::move(json::parse(text).value()); }

inline bool has_audit(const testing::TestClient& client, std::string_view event, std::string_view needle) {
  for (const auto& r : client.audit_records()) {
    if (r.event == event && (r.message.find(needle) != std::string::npos ||
                             r.fields_json.find(needle) != std::string::npos)) {
      return true;
    }
  }
  return false;
}

/// Without EVENTS_PUB (requested but not approved) there is no publisher: the
/// request throws CapabilityError and is audited. Likewise EVENTS_SUB.
inline void check_handles_need_grants(const std::shared_ptr<EventBus>& bus) {
  auto state = std::make_shared<ProbeState>();
  testing::TestClient client(
      std::make_unique<Probe>("no_grants", CapabilitySet{Capability::ROUTES, Capability::EVENTS_PUB,
                                                         Capability::EVENTS_SUB},
                              state, "anything"),
      client_options({Capability::ROUTES}, bus));
  CHECK(client.state() == ExtensionState::active);
  CHECK(state->publisher == nullptr);
  CHECK(state->publish_denied.find("EVENTS_PUB") != std::string::npos);
  CHECK(state->subscribe_denied.find("EVENTS_SUB") != std::string::npos);
  CHECK(has_audit(client, "capability_denied", "EVENTS_PUB"));
  CHECK(has_audit(client, "capability_denied", "EVENTS_SUB"));
  CHECK(bus->subscriber_health("no_grants").Size() == 0);

  // Granted only EVENTS_SUB: subscribes, still cannot publish.
  auto sub_only = std::make_shared<ProbeState>();
  testing::TestClient reader(std::make_unique<Probe>("sub_only", CapabilitySet{Capability::EVENTS_PUB,
                                                                               Capability::EVENTS_SUB},
                                                     sub_only, "contract.*"),
                             client_options({Capability::EVENTS_SUB}, bus));
  CHECK(sub_only->publisher == nullptr);
  CHECK(sub_only->subscribe_denied.empty());
  CHECK(sub_only->subscribe_error.empty());
  CHECK(bus->subscriber_health("sub_only").Size() == 1);
  CHECK(has_audit(reader, "capability_denied", "EVENTS_PUB"));
}

/// The source is the publishing extension, whatever the payload says; the
/// host publishes as "core"; another extension receives both.
inline void check_source_stamping_and_delivery(const std::shared_ptr<EventBus>& bus) {
  auto pub = std::make_shared<ProbeState>();
  auto sub = std::make_shared<ProbeState>();
  HostOptions options;
  options.read_environment = false;
  options.use_registered_extensions = false;
  options.event_bus = bus;
  options.log_sink = [](const LogRecord&) {};
  ExtensionHost host(options);
  host.add_linked("writer", [pub] { return std::make_unique<Probe>("writer", CapabilitySet{Capability::EVENTS_PUB}, pub); },
                  CapabilitySet{Capability::EVENTS_PUB}, true);
  host.add_linked("reader", [sub] {
    return std::make_unique<Probe>("reader", CapabilitySet{Capability::EVENTS_SUB}, sub, "stamp.*");
  }, CapabilitySet{Capability::EVENTS_SUB}, true);
  REQUIRE(host.start());
  REQUIRE(pub->publisher != nullptr);
  REQUIRE(sub->subscribe_error.empty());

  Json forged = parse_json(R"({"source":"core","id":"x","topic":"other","n":1})");
  auto id = pub->publisher->publish("stamp.forged", forged);
  REQUIRE(id);
  auto core_id = host.publish("stamp.core", parse_json(R"({"n":2})"));
  REQUIRE(core_id);
  REQUIRE(wait_until([&] { return sub->count() == 2; }));
  auto events = sub->events();
  if (events[0].topic != "stamp.forged") std::swap(events[0], events[1]);  // two topics: no order between them
  REQUIRE(events[0].id == *id);
  CHECK(events[0].source == "writer");
  CHECK(events[0].topic == "stamp.forged");
  CHECK(std::string((*events[0].payload)["source"].GetString()) == "core");  // payload kept as sent
  REQUIRE(events[1].id == *core_id);
  CHECK(events[1].source == "core");
  CHECK(events[1].topic == "stamp.core");

  // A linked-in extension may not take the host's name.
  auto impostor = std::make_shared<ProbeState>();
  ExtensionHost other(options);
  other.add_linked("core", [impostor] {
    return std::make_unique<Probe>("core", CapabilitySet{Capability::EVENTS_PUB}, impostor);
  }, CapabilitySet{Capability::EVENTS_PUB}, true);
  REQUIRE(other.start());
  CHECK(impostor->publisher == nullptr);
  Json status = other.status();
  CHECK_FALSE(status["extensions"].HasMember("core"));
  CHECK(json::dump(status["discovery_errors"]).find("reserved") != std::string::npos);

  // Health: /ext/{id}/health has an "events" check with the subscriptions,
  // /ext/status the bus and the subscriptions in the metrics. A handler's
  // event counts as delivered once the handler has returned, just after the
  // probe saw it: wait for the count, not for the probe.
  REQUIRE(wait_until([&] {
    Json subs = bus->subscriber_health("reader");
    return subs.IsArray() && subs.Size() == 1 && subs[0]["delivered"].GetUint64() == 2;
  }));
  Request health_request;
  health_request.method = "GET";
  health_request.path = "/ext/reader/health";
  Response health = host.handle(health_request);
  CHECK(health.status == 200);
  Json health_doc = parse_json(health.body);
  REQUIRE(health_doc["checks"].HasMember("events"));
  const JsonValue& check = health_doc["checks"]["events"];
  CHECK(std::string(check["status"].GetString()) == "ok");
  CHECK(check["connected"].GetBool());
  REQUIRE(check["subscriptions"].Size() == 1);
  CHECK(std::string(check["subscriptions"][0]["pattern"].GetString()) == "stamp.*");
  CHECK(check["subscriptions"][0]["delivered"].GetUint64() == 2);
  Json st = host.status();
  CHECK(st["event_bus"]["connected"].GetBool());
  CHECK(st["extensions"]["reader"]["metrics"]["subscriptions"].Size() == 1);

  // Shutting the host down cancels the extension's subscriptions.
  host.shutdown();
  CHECK(bus->subscriber_health("reader").Size() == 0);
}

}  // namespace ordinaut_test
