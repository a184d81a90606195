// mcp_http: built-in extension (its full behaviour comes with its own issue).
#include <ordinaut/extension.hpp>

namespace {

class McpHttp final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override {
    return {"mcp_http", "MCP over HTTP", "0.1.0", "Model Context Protocol (Streamable HTTP) server exposing every tool in the registry"};
  }
  ordinaut::CapabilitySet requested_capabilities() const override {
    return {ordinaut::Capability::ROUTES};
  }
  std::optional<ordinaut::Router> setup(ordinaut::SetupContext&) override { return ordinaut::Router{}; }
};

}  // namespace

ORDINAUT_EXTENSION(McpHttp)
