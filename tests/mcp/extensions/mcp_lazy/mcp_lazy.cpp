// Test-only extension: one tool, one resource and one prompt, loaded lazily on
// the first call of its tool, so that the registries change while MCP sessions
// are open (→ notifications/tools/list_changed, then resources/list_changed and
// prompts/list_changed: the tool is registered first).
#include <ordinaut/extension.hpp>

namespace {

using namespace ordinaut;

class McpLazy final : public Extension {
 public:
  ExtensionInfo info() const override {
    return {"mcp_lazy", "Lazily loaded tools (test only)", "0.1.0", "A tool that appears only once its extension loads"};
  }
  CapabilitySet requested_capabilities() const override {
    return {Capability::TOOLS, Capability::RESOURCES, Capability::PROMPTS};
  }
  std::optional<Router> setup(SetupContext& context) override {
    context.tool_registrar().add({.name = "ext.mcp_lazy.hello",
                                  .description = "Says hello; its extension loads on the first call",
                                  .function = [](const JsonValue&, ToolContext&) {
                                    Json out;
                                    out.SetString("hello from a lazily loaded extension");
                                    return out;
                                  }});
    context.resource_registrar().add({.uri = "ext://mcp_lazy/greeting",
                                      .name = "greeting",
                                      .description = "A greeting that exists once the extension loaded",
                                      .mime_type = "text/plain",
                                      .read = [](const ResourceRequest& request) {
                                        return std::vector{ResourceContents::make_text(request.uri, "hello")};
                                      }});
    context.prompt_registrar().add({.name = "ext.mcp_lazy.greet",
                                    .description = "Asks for a greeting",
                                    .get = [](const StringMap&) {
                                      return PromptResult{.messages = {{.role = "user",
                                                                        .content = ContentBlock::make_text("Say hello")}}};
                                    }});
    return std::nullopt;
  }
};

}  // namespace

ORDINAUT_EXTENSION(McpLazy)
