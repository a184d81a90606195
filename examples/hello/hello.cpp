// hello: the smallest external extension. Build it as a shared module, put
// extension.json beside it, and add that folder to ORDINAUT_EXT_PATHS:
//   GET /ext/hello/ping          → {"pong":true}
//   GET /ext/hello/greet/{name}  → {"greeting":"Hello, {name}!"}
#include <ordinaut/extension.hpp>

namespace {

class Hello final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override {
    // id and version must equal extension.json's, or the host refuses the module.
    return {"hello", "Hello", "1.0.0", "The smallest useful extension: GET /ext/hello/ping and a greeting"};
  }

  ordinaut::CapabilitySet requested_capabilities() const override { return {ordinaut::Capability::ROUTES}; }

  std::optional<ordinaut::Router> setup(ordinaut::SetupContext&) override {
    ordinaut::Router router;
    // A constant body: the server benchmark measures the host, not this handler.
    router.get("/ping", [](ordinaut::Request&) { return ordinaut::Response::json_text(200, R"({"pong":true})"); });
    router.get("/greet/{name}", [](ordinaut::Request& request) {
      const std::string greeting = "Hello, " + std::string(request.param("name")) + "!";
      return ordinaut::Response::json(200, ordinaut::json::object({{"greeting", greeting}}));
    });
    return router;
  }
};

}  // namespace

ORDINAUT_EXTENSION(Hello)
