// A test extension that records its lifecycle: every step appends one line
// "{id} {step}" to the file named by ORDINAUT_LIFECYCLE_LOG (when set).
// Built twice (probe_a, probe_b) from this source; PROBE_ID names the id.
//
// Routes: GET /grants → the granted capability names; GET /ping → "pong".
// With TOOLS: tool ext.{id}.echo. With BACKGROUND_TASKS: task "worker" that
// waits for its stop token and logs "task_started" / "task_stopped".
#include <fcntl.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>

#include <ordinaut/extension.hpp>

#ifndef PROBE_ID
#error "PROBE_ID must be defined"
#endif

namespace {

// One write(2) per line with O_APPEND: lines from threads and processes never interleave.
void record(const std::string& step) {
  const char* file = std::getenv("ORDINAUT_LIFECYCLE_LOG");
  if (file == nullptr || *file == '\0') return;
  int fd = ::open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  std::string line = std::string(PROBE_ID) + " " + step + "\n";
  (void)!::write(fd, line.data(), line.size());
  ::close(fd);
}

class Probe final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override {
    return {PROBE_ID, "Lifecycle probe " PROBE_ID, "1.0.0", "records its lifecycle for the tests"};
  }
  ordinaut::CapabilitySet requested_capabilities() const override {
    using C = ordinaut::Capability;
    return {C::ROUTES, C::TOOLS, C::BACKGROUND_TASKS};
  }

  std::optional<ordinaut::Router> setup(ordinaut::SetupContext& context) override {
    record("setup");
    std::string grants = "[";
    for (const auto& name : context.grants().names()) grants += (grants.size() > 1 ? ",\"" : "\"") + name + "\"";
    grants += "]";
    if (context.granted(ordinaut::Capability::TOOLS)) {
      ordinaut::ToolSpec echo;
      echo.name = context.tool_registrar().prefix() + "echo";
      echo.description = "returns its input";
      echo.function = [](const ordinaut::JsonValue& input, ordinaut::ToolContext&) { return ordinaut::json::copy(input); };
      context.tool_registrar().add(std::move(echo));
    }
    if (context.granted(ordinaut::Capability::BACKGROUND_TASKS)) {
      auto started = context.background().start("worker", [](std::stop_token stop) {
        record("task_started");
        std::mutex m;
        std::condition_variable_any cv;
        std::unique_lock lock(m);
        cv.wait(lock, stop, [] { return false; });
        record("task_stopped");
      });
      if (!started) throw std::runtime_error(started.error().message);
    }
    ordinaut::Router router;
    router.get("/grants", [grants](ordinaut::Request&) { return ordinaut::Response::json_text(200, grants); });
    router.get("/ping", [](ordinaut::Request&) { return ordinaut::Response::text(200, "pong"); });
    return router;
  }

  void on_startup() override { record("on_startup"); }
  void on_shutdown() override { record("on_shutdown"); }
};

}  // namespace

ORDINAUT_EXTENSION(Probe)
