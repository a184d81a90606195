// A test module whose static initializer leaves a mark (the environment
// variable ORDINAUT_TEST_MARKER_LOADED), so that a test can tell whether
// dlopen ever ran its constructors: a module refused before loading never
// sets it.
#include <cstdlib>

#include <ordinaut/extension.hpp>

namespace {

const bool g_marked = [] { return ::setenv("ORDINAUT_TEST_MARKER_LOADED", "1", 1) == 0; }();

class Marker final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override {
    return {"marker", "Marker test extension", "1.0.0", "Marks the environment when its module is loaded"};
  }
  ordinaut::CapabilitySet requested_capabilities() const override { return {ordinaut::Capability::ROUTES}; }
  std::optional<ordinaut::Router> setup(ordinaut::SetupContext&) override {
    ordinaut::Router router;
    router.get("/", [](ordinaut::Request&) { return ordinaut::Response::text(200, g_marked ? "marked" : "unmarked"); });
    return router;
  }
};

}  // namespace

ORDINAUT_EXTENSION(Marker)
