// webui: built-in extension (its full behaviour comes with its own issue).
#include <ordinaut/extension.hpp>

namespace {

class WebUi final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override {
    return {"webui", "Web UI", "0.1.0", "Task management, pipeline runs, system status and extension management in the browser"};
  }
  ordinaut::CapabilitySet requested_capabilities() const override {
    return {ordinaut::Capability::ROUTES, ordinaut::Capability::STATIC};
  }
  std::optional<ordinaut::Router> setup(ordinaut::SetupContext&) override { return ordinaut::Router{}; }
};

}  // namespace

ORDINAUT_EXTENSION(WebUi)
