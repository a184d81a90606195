// Reports id "mismatch", version 2.0.0: its manifest says 1.0.0 (version
// mismatch), and tests also point a manifest with another id at it.
#include <ordinaut/extension.hpp>

namespace {

class Mismatch final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override { return {"mismatch", "Mismatch", "2.0.0", "info differs"}; }
  ordinaut::CapabilitySet requested_capabilities() const override { return {ordinaut::Capability::ROUTES}; }
  std::optional<ordinaut::Router> setup(ordinaut::SetupContext&) override {
    ordinaut::Router router;
    router.get("/", [](ordinaut::Request&) { return ordinaut::Response::text(200, "should never be served"); });
    return router;
  }
};

}  // namespace

ORDINAUT_EXTENSION(Mismatch)
