// embed: the library inside an existing program, no HTTP server needed.
//
// The program links libordinaut, registers a linked-in extension with
// ORDINAUT_REGISTER_EXTENSION, approves its capabilities (as an operator would
// with ORDINAUT_EXT_ENTRY_GRANTS), starts the host and serves one request
// in-process through ExtensionHost::handle(). A real host would call handle()
// from its own HTTP server for every request under /ext.
#include <cstdio>

#include <ordinaut/host.hpp>

namespace {

class Clock final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override {
    return {"clock", "Clock", "1.0.0", "Tells the time of the host program"};
  }
  ordinaut::CapabilitySet requested_capabilities() const override { return {ordinaut::Capability::ROUTES}; }
  std::optional<ordinaut::Router> setup(ordinaut::SetupContext& context) override {
    ordinaut::Router router;
    router.get("/now", [mount = context.mount_path()](ordinaut::Request&) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
      return ordinaut::Response::json_text(200, "{\"mount\":\"" + mount + "\",\"epoch_ms\":" + std::to_string(ms) + "}");
    });
    return router;
  }
};

}  // namespace

ORDINAUT_REGISTER_EXTENSION("clock", Clock);

int main() {
  ordinaut::HostOptions options;
  // Deny by default: without this approval the extension would get no ROUTES.
  // Operators can give the same with ORDINAUT_EXT_ENTRY_GRANTS='{"clock":["ROUTES"]}'.
  options.entry_grants = std::map<std::string, std::vector<std::string>>{{"clock", {"ROUTES"}}};
  ordinaut::ExtensionHost host(std::move(options));
  if (auto started = host.start(); !started) {
    std::fprintf(stderr, "host did not start: %s\n", started.error().message.c_str());
    return 1;
  }

  ordinaut::Request request;
  request.method = "GET";
  request.path = "/ext/clock/now";
  ordinaut::Response response = host.handle(request);  // loads "clock" lazily, then serves
  std::printf("%s %d %s\n%s\n", request.path.c_str(), response.status, ordinaut::status_reason(response.status),
              response.body.c_str());
  return response.status == 200 ? 0 : 1;
}
