// webui: a small console in the browser.
//
// The page in static/ lists, creates and runs tasks through the scheduler
// extension's REST API (/ext/scheduler/api: manual tasks whose payload is a
// pipeline of tool steps, run now, runs with their status), and shows the
// extensions and live system status (/ext/status). When the scheduler is not
// loaded the page says so and the rest keeps working. webui keeps no tasks of
// its own; its one route lists the registry's tools for the step picker.
#include <ordinaut/extension.hpp>

namespace {

using ordinaut::Json;
using ordinaut::JsonValue;
using ordinaut::Request;
using ordinaut::Response;
namespace json = ordinaut::json;

class WebUi final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override {
    return {"webui", "Web UI", "0.2.0",
            "Tasks and runs (through the scheduler), system status and extension management in the browser"};
  }

  ordinaut::CapabilitySet requested_capabilities() const override {
    using C = ordinaut::Capability;
    return {C::ROUTES, C::STATIC};
  }

  std::optional<ordinaut::Router> setup(ordinaut::SetupContext& ctx) override {
    tools_ = &ctx.tools();
    ordinaut::Router router;
    router.get("/api/tools", [this](Request&) { return list_tools(); }, {.summary = "Tools a pipeline step can call"});
    return router;
  }

 private:
  Response list_tools() {
    Json doc = json::object();
    auto& a = doc.GetAllocator();
    JsonValue list(rapidjson::kArrayType);
    for (const auto& t : tools_->list()) {
      JsonValue v(rapidjson::kObjectType);
      v.AddMember("name", JsonValue(t.name.c_str(), a), a);
      v.AddMember("description", JsonValue(t.description.c_str(), a), a);
      v.AddMember("owner", JsonValue(t.owner.c_str(), a), a);
      v.AddMember("input_schema", JsonValue(*t.input_schema, a), a);
      list.PushBack(v, a);
    }
    doc.AddMember("tools", list, a);
    return Response::json(200, doc);
  }

  const ordinaut::ToolView* tools_ = nullptr;
};

}  // namespace

ORDINAUT_EXTENSION(WebUi)
