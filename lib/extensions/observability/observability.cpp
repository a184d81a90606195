// observability: Prometheus metrics of the host (filled in by its issue).
#include <ordinaut/extension.hpp>

namespace {

class Observability final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override {
    return {"observability", "Observability", "0.1.0",
            "Prometheus metrics for the host, its extensions, tools, events and the process"};
  }
  ordinaut::CapabilitySet requested_capabilities() const override { return {ordinaut::Capability::ROUTES}; }
  std::optional<ordinaut::Router> setup(ordinaut::SetupContext&) override { return ordinaut::Router{}; }
};

}  // namespace

ORDINAUT_EXTENSION(Observability)
