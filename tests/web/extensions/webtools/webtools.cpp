// Test-only extension for the web UI tests: two tools a task step can call.
#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <string>

#include <ordinaut/extension.hpp>

namespace {

class WebTools final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override { return {"webtools", "Web test tools", "1.0.0", "tools for tests"}; }
  ordinaut::CapabilitySet requested_capabilities() const override { return {ordinaut::Capability::TOOLS}; }
  std::optional<ordinaut::Router> setup(ordinaut::SetupContext& ctx) override {
    ctx.tool_registrar().add({
        .name = "ext.webtools.upper",
        .description = "Upper-cases text",
        .input_schema = R"({"type":"object","required":["text"],"properties":{"text":{"type":"string"}}})",
        .output_schema = R"({"type":"object","required":["text"],"properties":{"text":{"type":"string"}}})",
        .function =
            [](const ordinaut::JsonValue& in, ordinaut::ToolContext&) {
              std::string text = in["text"].GetString();
              std::transform(text.begin(), text.end(), text.begin(),
                             [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
              ordinaut::Json out = ordinaut::json::object();
              out.AddMember("text", ordinaut::JsonValue(text.c_str(), out.GetAllocator()), out.GetAllocator());
              return out;
            },
    });
    ctx.tool_registrar().add({
        .name = "ext.webtools.fail",
        .description = "Always fails",
        .function = [](const ordinaut::JsonValue&, ordinaut::ToolContext&) -> ordinaut::Json {
          throw std::runtime_error("deliberate failure");
        },
    });
    return std::nullopt;
  }
};

}  // namespace

ORDINAUT_EXTENSION(WebTools)
