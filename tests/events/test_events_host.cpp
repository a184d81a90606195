// The event contract through the host, on the default in-memory bus.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "host_contract.hpp"

using namespace ordinaut_test;

TEST_CASE("memory bus: handles only with their grants, audited otherwise") {
  check_handles_need_grants(make_memory_event_bus());
}

TEST_CASE("memory bus: source stamped by the host, host publishes as core, health shows subscriptions") {
  check_source_stamping_and_delivery(make_memory_event_bus());
}

TEST_CASE("a host without a configured bus uses an in-memory one") {
  auto state = std::make_shared<ProbeState>();
  testing::TestClient client(std::make_unique<Probe>("solo", CapabilitySet{Capability::EVENTS_PUB,
                                                                           Capability::EVENTS_SUB},
                                                     state, "solo.*"),
                             client_options({Capability::EVENTS_PUB, Capability::EVENTS_SUB}));
  REQUIRE(state->publisher != nullptr);
  REQUIRE(state->publisher->publish("solo.x", parse_json("{}")));
  REQUIRE(wait_until([&] { return state->count() == 1; }));
  CHECK(state->events()[0].source == "solo");
  CHECK(std::string(client.host().status()["event_bus"]["kind"].GetString()) == "memory");
}
