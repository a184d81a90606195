// Test fixture (tests/mcp/test_mcp_protocol.cpp): a route and a tool that ask
// the host for the event publisher although EVENTS_PUB was not granted. The
// handle is requested on each call through the SetupContext kept from
// setup(), the mistake an author makes when a capability is missing from the
// manifest; the host must answer 403 forbidden naming EVENTS_PUB on the
// route, the REST tool endpoint and MCP alike.
#include <ordinaut/extension.hpp>

namespace {

class Denied final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override {
    return {"mcp_denied", "Capability denial fixture", "1.0.0", "Uses EVENTS_PUB without the grant"};
  }
  ordinaut::CapabilitySet requested_capabilities() const override {
    return {ordinaut::Capability::ROUTES, ordinaut::Capability::TOOLS};
  }

  std::optional<ordinaut::Router> setup(ordinaut::SetupContext& context) override {
    context_ = &context;
    context.tool_registrar().add({.name = context.tool_registrar().prefix() + "publish",
                                  .description = "Publishes an event without EVENTS_PUB (always refused)",
                                  .function = [this](const ordinaut::JsonValue&, ordinaut::ToolContext&) {
                                    return publish();
                                  }});
    ordinaut::Router router;
    router.post("/publish", [this](ordinaut::Request&) { return ordinaut::Response::json(200, publish()); });
    return router;
  }

 private:
  ordinaut::Json publish() {
    // Throws CapabilityError: EVENTS_PUB is not granted.
    const auto& publisher = context_->events_publisher();
    auto id = publisher.publish("mcp_denied.x", ordinaut::json::object());
    return ordinaut::json::object({{"id", id ? *id : std::string()}});
  }

  ordinaut::SetupContext* context_ = nullptr;
};

}  // namespace

ORDINAUT_EXTENSION(Denied)
