// A test extension that registers one tool, one resource, one resource
// template and one prompt, for the manifest-contribution tests
// (tests/host/test_contributions.cpp). ORDINAUT_TEST_CONTRIB_MODE=mismatch
// makes it register a different input schema and no prompt, so that the
// host's check against the manifest has something to find.
#include <atomic>
#include <cstdlib>
#include <string>

#include <ordinaut/extension.hpp>

namespace {

std::atomic<int> g_constructed{0};

bool mismatch() {
  const char* mode = std::getenv("ORDINAUT_TEST_CONTRIB_MODE");
  return mode != nullptr && std::string(mode) == "mismatch";
}

class Contrib final : public ordinaut::Extension {
 public:
  Contrib() { ++g_constructed; }

  ordinaut::ExtensionInfo info() const override {
    return {"contrib", "Contributions test extension", "1.0.0", "A tool, a resource, a template and a prompt"};
  }
  ordinaut::CapabilitySet requested_capabilities() const override {
    using C = ordinaut::Capability;
    return {C::TOOLS, C::RESOURCES, C::PROMPTS};
  }

  std::optional<ordinaut::Router> setup(ordinaut::SetupContext& context) override {
    using namespace ordinaut;
    context.tool_registrar().add({
        .name = "ext.contrib.echo",
        .description = "Echoes its text",
        .input_schema = mismatch() ? R"({"type":"object","properties":{"text":{"type":"integer"}}})"
                                   : R"({"type":"object","required":["text"],"properties":{"text":{"type":"string"}}})",
        .function = [](const JsonValue& in, ToolContext&) { return json::copy(in); },
    });
    context.resource_registrar().add({
        .uri = "ext://contrib/readme",
        .name = "readme",
        .mime_type = "text/plain",
        .read = [](const ResourceRequest& r) {
          return std::vector<ResourceContents>{ResourceContents::make_text(r.uri, "contrib readme")};
        },
    });
    context.resource_registrar().add_template({
        .uri_template = "ext://contrib/items/{id}",
        .name = "item",
        .mime_type = "text/plain",
        .read = [](const ResourceRequest& r) {
          return std::vector<ResourceContents>{ResourceContents::make_text(r.uri, "item " + r.variables.at("id"))};
        },
        .complete = [](std::string_view, std::string_view value, const StringMap&) {
          std::vector<std::string> out;
          for (const char* id : {"alpha", "beta", "bravo"}) {
            if (std::string_view(id).starts_with(value)) out.emplace_back(id);
          }
          return out;
        },
    });
    if (!mismatch()) {
      context.prompt_registrar().add({
          .name = "ext.contrib.greet",
          .description = "Greets someone",
          .arguments = {{.name = "who", .required = true}},
          .get = [](const StringMap& args) {
            return PromptResult{.description = "greeting",
                                .messages = {{.role = "user", .content = ContentBlock::make_text("Hello " + args.at("who"))}}};
          },
      });
    }
    return std::nullopt;
  }
};

}  // namespace

extern "C" __attribute__((visibility("default"))) int contrib_ext_constructed() { return g_constructed.load(); }

ORDINAUT_EXTENSION(Contrib)
