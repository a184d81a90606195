// The well-behaved test extension: routes (echo, params, a throwing handler, a
// validated body) and one tool. Counts its constructions so that tests can
// prove a module's factory ran exactly once.
#include <atomic>
#include <chrono>
#include <thread>

#include <ordinaut/extension.hpp>

namespace {

std::atomic<int> g_constructed{0};

class Good final : public ordinaut::Extension {
 public:
  Good() : instance_(++g_constructed) {}

  ordinaut::ExtensionInfo info() const override {
    return {"good", "Good test extension", "1.0.0", "Routes and a tool, for the loading tests"};
  }
  ordinaut::CapabilitySet requested_capabilities() const override {
    return {ordinaut::Capability::ROUTES, ordinaut::Capability::TOOLS};
  }

  std::optional<ordinaut::Router> setup(ordinaut::SetupContext& context) override {
    using ordinaut::Request;
    using ordinaut::Response;
    // Slow enough that concurrent first requests really overlap the load.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (context.granted(ordinaut::Capability::TOOLS)) {
      context.tool_registrar().add({
          .name = "ext.good.add",
          .title = "Add",
          .description = "Adds two integers",
          .input_schema = R"({"type":"object","required":["a","b"],
                             "properties":{"a":{"type":"integer"},"b":{"type":"integer"}}})",
          .output_schema = R"({"type":"object","required":["sum"],"properties":{"sum":{"type":"integer"}}})",
          .function = [](const ordinaut::JsonValue& in, ordinaut::ToolContext&) {
            ordinaut::Json out = ordinaut::json::object();
            out.AddMember("sum", in["a"].GetInt64() + in["b"].GetInt64(), out.GetAllocator());
            return out;
          },
      });
    }
    const int instance = instance_;
    ordinaut::Router router;
    router.post("/echo", [instance](Request& r) {
      std::string type(r.header("Content-Type"));
      Response out = Response::text(200, r.body, type.empty() ? "application/octet-stream" : type);
      out.headers.set("X-Instance", std::to_string(instance));
      return out;
    });
    router.get("/instance", [instance](Request&) {
      return Response::json_text(200, "{\"instance\":" + std::to_string(instance) + "}");
    });
    router.get("/items/{id}", [](Request& r) {
      return Response::json_text(200, "{\"id\":\"" + ordinaut::json::escape(r.param("id")) + "\"}");
    });
    router.get("/files/{path...}", [](Request& r) {
      return Response::json_text(200, "{\"path\":\"" + ordinaut::json::escape(r.param("path")) + "\"}");
    });
    router.get("/boom", [](Request&) -> Response { throw std::runtime_error("boom: the handler failed"); });
    router.post(
        "/validated",
        [](Request& r) {
          auto body = r.json();
          return Response::json_text(200, "{\"n\":" + std::to_string((*body)["n"].GetInt64()) + "}");
        },
        {.summary = "takes {n: integer}",
         .request_schema = R"({"type":"object","required":["n"],"properties":{"n":{"type":"integer"}}})"});
    return router;
  }

 private:
  int instance_;
};

}  // namespace

/// Constructions of Good in this process (read by tests through dlsym).
extern "C" __attribute__((visibility("default"))) int good_ext_constructed() { return g_constructed.load(); }

ORDINAUT_EXTENSION(Good)
