// Test-only extension: one tool, loaded lazily on its first call, so that the
// registry changes while MCP sessions are open (→ notifications/tools/list_changed).
#include <ordinaut/extension.hpp>

namespace {

using namespace ordinaut;

class McpLazy final : public Extension {
 public:
  ExtensionInfo info() const override {
    return {"mcp_lazy", "Lazily loaded tools (test only)", "0.1.0", "A tool that appears only once its extension loads"};
  }
  CapabilitySet requested_capabilities() const override { return {Capability::TOOLS}; }
  std::optional<Router> setup(SetupContext& context) override {
    context.tool_registrar().add({.name = "ext.mcp_lazy.hello",
                                  .description = "Says hello; its extension loads on the first call",
                                  .function = [](const JsonValue&, ToolContext&) {
                                    Json out;
                                    out.SetString("hello from a lazily loaded extension");
                                    return out;
                                  }});
    return std::nullopt;
  }
};

}  // namespace

ORDINAUT_EXTENSION(McpLazy)
