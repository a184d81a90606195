// events_demo: built-in extension (its full behaviour comes with its own issue).
#include <ordinaut/extension.hpp>

namespace {

class EventsDemo final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override {
    return {"events_demo", "Events demo", "0.1.0", "Publish, subscribe and stream events over Server-Sent Events"};
  }
  ordinaut::CapabilitySet requested_capabilities() const override {
    return {ordinaut::Capability::ROUTES, ordinaut::Capability::EVENTS_PUB, ordinaut::Capability::EVENTS_SUB};
  }
  std::optional<ordinaut::Router> setup(ordinaut::SetupContext&) override { return ordinaut::Router{}; }
};

}  // namespace

ORDINAUT_EXTENSION(EventsDemo)
