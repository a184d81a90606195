// Reloads return what they used (issue 13): a runtime that a reload replaced
// is freed once nothing can still run its code, and not before: requests,
// streams and tool calls that are inside it when the reload comes finish on
// valid objects (the ASan build checks that).
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "host/entry.hpp"  // detail::live_runtimes()
#include "lifecycle_support.hpp"

using namespace lifecycle_test;

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;  // RSS means little under a sanitizer's allocator
#else
constexpr bool kSanitized = false;
#endif

// VmRSS of this process in KiB, from /proc/self/status.
long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      std::istringstream fields(line.substr(6));
      long kib = -1;
      fields >> kib;
      return kib;
    }
  }
  return -1;
}

// A scripted extension that uses what a runtime owns: a route, a tool, an
// event subscription and a background task.
std::shared_ptr<Script> busy_script() {
  auto script = std::make_shared<Script>();
  script->id = "busy";
  script->setup = [](ordinaut::SetupContext& context, ordinaut::Router&) {
    context.tool_registrar().add({
        .name = "ext.busy.echo",
        .description = "Returns its input",
        .input_schema = R"({"type":"object"})",
        .function = [](const ordinaut::JsonValue& in, ordinaut::ToolContext&) { return ordinaut::json::copy(in); },
    });
    if (!context.events_subscriber().subscribe("busy.*", [](const ordinaut::Event&) {})) {
      throw std::runtime_error("no subscription");
    }
    if (!context.background().start_periodic("tick", std::chrono::hours(1), [](std::stop_token) {})) {
      throw std::runtime_error("no task");
    }
  };
  return script;
}

ordinaut::Response reload(ordinaut::ExtensionHost& host, const std::string& id) {
  return send(host, "POST", "/ext/_admin/extensions/" + id + "/reload");
}

}  // namespace

TEST_CASE("reloads through the admin API return what they used: bounded RSS over 10,200 reloads") {
  test_support::LogCapture logs;
  test_support::TempDir dir;
  // A module from a manifest too (dlopen once, then reused), besides the
  // linked-in extension.
  test_support::write_file(dir.path() / "marker" / "extension.json",
                           test_support::manifest_json("marker", "marker_ext.so", R"(["ROUTES"])"));
  test_support::place_module(test_support::test_module("marker"), dir.path() / "marker" / "marker_ext.so");
  // And the built-in observability extension (the issue's case: 20,000
  // reloads of it cost 173 MiB).
  const char* build_root = std::getenv("ORDINAUT_BUILD_ROOT");
  REQUIRE(build_root != nullptr);
  const auto observability = std::filesystem::path(build_root) / "lib" / "extensions" / "observability";
  auto o = options(logs);
  o.extension_paths = {dir.path(), observability};
  o.log_sink = [](const ordinaut::LogRecord&) {};  // 10,000 reloads would fill a capture
  const std::size_t base = ordinaut::detail::live_runtimes();
  ordinaut::ExtensionHost host(std::move(o));
  auto script = busy_script();
  add(host, script, true);
  REQUIRE(host.start().ok());
  REQUIRE(host.load("marker").ok());
  REQUIRE(host.load("observability").ok());
  CHECK(ordinaut::detail::live_runtimes() == base + 3);

  const int warmup = kSanitized ? 150 : 501;
  const int measured = kSanitized ? 1500 : 10200;  // multiples of 3: each extension as often
  auto cycle = [&](int i) {
    const std::string id = i % 3 == 0 ? "busy" : i % 3 == 1 ? "marker" : "observability";
    auto r = reload(host, id);
    if (r.status != 200) FAIL_CHECK("reload ", i, " of ", id, ": ", r.status, " ", r.body);
  };
  for (int i = 0; i < warmup; ++i) cycle(i);
  const long before = rss_kib();
  REQUIRE(before > 0);
  for (int i = 0; i < measured; ++i) cycle(i);
  const long after = rss_kib();
  MESSAGE("RSS after ", warmup, " warm-up reloads: ", before, " KiB; after ", measured, " more: ", after, " KiB (",
          after - before, " KiB growth)");
  // Every replaced runtime was freed: one per extension is left.
  CHECK(ordinaut::detail::live_runtimes() == base + 3);
  if (!kSanitized) CHECK(after - before < 8 * 1024);
  CHECK(send(host, "GET", "/ext/busy/ping").status == 200);
  CHECK(send(host, "GET", "/ext/marker/").status == 200);
  CHECK(send(host, "GET", "/ext/observability/metrics").status == 200);
  CHECK(host.tools().call("ext.busy.echo", ordinaut::json::object()).ok());
  CHECK(script->instances.load() == 1 + warmup / 3 + measured / 3);  // busy: every third cycle
}

TEST_CASE("a reload while a request, a stream and a tool call are inside the old runtime") {
  test_support::LogCapture logs;
  Latch hold;
  std::atomic<int> inside{0};
  auto script = std::make_shared<Script>();
  script->id = "held";
  script->requested = {Capability::ROUTES, Capability::TOOLS};
  script->setup = [&hold, &inside](ordinaut::SetupContext& context, ordinaut::Router& router) {
    // Each reads the runtime's SetupContext after the reload: freed memory
    // there is what ASan reports.
    router.get("/hold", [&hold, &inside, &context](ordinaut::Request&) {
      ++inside;
      hold.wait();
      return ordinaut::Response::text(200, context.extension_id());
    });
    router.get("/stream", [&hold, &inside, &context](ordinaut::Request&) {
      return ordinaut::Response::event_stream([&hold, &inside, &context](ordinaut::StreamSink& sink) {
        sink.write("first ");
        ++inside;
        hold.wait();
        sink.write(context.mount_path());
      });
    });
    context.tool_registrar().add({
        .name = "ext.held.wait",
        .description = "Waits for the test, then names its extension",
        .input_schema = R"({"type":"object"})",
        .function =
            [&hold, &inside, &context](const ordinaut::JsonValue&, ordinaut::ToolContext&) {
              ++inside;
              hold.wait();
              ordinaut::Json out = ordinaut::json::object();
              out.AddMember("id", ordinaut::JsonValue(context.extension_id().c_str(), out.GetAllocator()),
                            out.GetAllocator());
              return out;
            },
    });
  };
  const std::size_t base = ordinaut::detail::live_runtimes();
  ordinaut::ExtensionHost host(options(logs));
  add(host, script, true);
  REQUIRE(host.start().ok());

  struct Sink final : ordinaut::StreamSink {
    std::string text;
    bool write(std::string_view data) override {
      text.append(data);
      return true;
    }
    bool is_open() const override { return true; }
  };
  ordinaut::Response request, streamed;
  Sink sink;
  ordinaut::Result<ordinaut::Json> tool = ordinaut::make_error("unset", "unset");
  std::thread request_thread([&] { request = send(host, "GET", "/ext/held/hold"); });
  std::thread stream_thread([&] {
    streamed = send(host, "GET", "/ext/held/stream");
    if (streamed.stream) streamed.stream(sink);
    streamed.stream = nullptr;  // its lease ends here
  });
  std::thread tool_thread([&] { tool = host.tools().call("ext.held.wait", ordinaut::json::object()); });
  REQUIRE(eventually([&] { return inside.load() == 3; }, 30000ms));

  REQUIRE(reload(host, "held").status == 200);
  REQUIRE(reload(host, "held").status == 200);
  // The first runtime is still in use; the one between was freed at once.
  CHECK(ordinaut::detail::live_runtimes() == base + 2);
  hold.open();
  request_thread.join();
  stream_thread.join();
  tool_thread.join();
  CHECK(request.status == 200);
  CHECK(request.body == "held");
  CHECK(sink.text == "first /ext/held");
  REQUIRE(tool.ok());
  CHECK(test_support::str((*tool)["id"]) == "held");
  request = {};
  streamed = {};
  // Nothing uses the old runtime any more: only the current one is left.
  CHECK(ordinaut::detail::live_runtimes() == base + 1);
  CHECK(script->instances.load() == 3);
  CHECK(send(host, "GET", "/ext/held/hold").status == 200);  // the latch is open now
}
