// Serves static/ (STATIC) next to one route; built as "statictest" and
// "staticdenied" (see meson.build).
#include <ordinaut/extension.hpp>

namespace {

class StaticExtension final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override {
    return {STATIC_EXT_ID, "Static test", "1.0.0", "static/ served by the host"};
  }
  ordinaut::CapabilitySet requested_capabilities() const override {
    return {ordinaut::Capability::ROUTES, ordinaut::Capability::STATIC};
  }
  std::optional<ordinaut::Router> setup(ordinaut::SetupContext&) override {
    ordinaut::Router router;
    router.get("/api/ping", [](ordinaut::Request&) { return ordinaut::Response::json_text(200, R"({"pong":true})"); });
    return router;
  }
};

}  // namespace

ORDINAUT_EXTENSION(StaticExtension)
