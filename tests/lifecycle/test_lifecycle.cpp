// Lifecycle of extensions in a real ExtensionHost: shutdown order, bounded
// on_startup/on_shutdown, disable/enable, reload with a changed manifest, the
// admin endpoints, and requests racing with all of it.
#include <doctest/doctest.h>

#include <filesystem>

#include <ordinaut/events.hpp>

#include "lifecycle_support.hpp"

#ifndef ORDINAUT_LIFECYCLE_EXT_DIR
#error "ORDINAUT_LIFECYCLE_EXT_DIR must name build/tests/lifecycle/extensions"
#endif

using namespace lifecycle_test;
using test_support::expect_error;
using test_support::parse_json;
using test_support::str;
using test_support::strings;
using Clock = std::chrono::steady_clock;

namespace {

// A script that registers a tool, subscribes to "t.*" and runs a task that
// waits for its stop token; every step is written to `journal` as "{id}:{step}".
std::shared_ptr<Script> journaled(const std::string& id, Journal& journal) {
  auto script = std::make_shared<Script>();
  script->id = id;
  script->setup = [id, &journal](ordinaut::SetupContext& context, ordinaut::Router&) {
    ordinaut::ToolSpec tool;
    tool.name = context.tool_registrar().prefix() + "echo";
    tool.description = "echo";
    tool.function = [](const ordinaut::JsonValue& in, ordinaut::ToolContext&) { return ordinaut::json::copy(in); };
    context.tool_registrar().add(std::move(tool));
    // Runs on whichever thread loads the extension: failures throw (setup then
    // fails visibly) rather than assert off the test's thread.
    if (!context.events_subscriber().subscribe("t.*", [](const ordinaut::Event&) {})) {
      throw std::runtime_error("subscribe failed");
    }
    auto started = context.background().start("loop", [id, &journal](std::stop_token stop) {
      std::mutex m;
      std::condition_variable_any cv;
      std::unique_lock lock(m);
      cv.wait(lock, stop, [] { return false; });
      journal.add(id + ":task_stopped");
    });
    if (!started) throw std::runtime_error(started.error().message);
    journal.add(id + ":setup");
  };
  script->on_shutdown = [id, &journal] { journal.add(id + ":on_shutdown"); };
  return script;
}

std::filesystem::path probe_module(const std::string& id) {
  return std::filesystem::path(ORDINAUT_LIFECYCLE_EXT_DIR) / id / (id + ".so");
}

std::string probe_manifest(const std::string& grants, bool enabled = true, const std::string& version = "1.0.0",
                           const std::string& id = "probe_a") {
  return R"({"id":")" + id + R"(","name":"Probe","version":")" + version +
         R"(","module":"probe_a.so","eager":false,"enabled":)" + (enabled ? "true" : "false") +
         R"(,"grants":)" + grants + "}";
}

std::vector<std::string> grants_served(ordinaut::ExtensionHost& host) {
  auto r = send(host, "GET", "/ext/probe_a/grants");
  REQUIRE_MESSAGE(r.status == 200, r.body);
  return strings(parse_json(r.body));
}

}  // namespace

TEST_CASE("shutdown: reverse load order; on_shutdown, then tasks, subscriptions, tools, routes") {
  test_support::LogCapture logs;
  Journal journal;
  ordinaut::ExtensionHost host(options(logs));
  auto a = journaled("alpha", journal);
  auto b = journaled("beta", journal);
  auto lazy = journaled("gamma", journal);
  // What on_shutdown() still sees proves the order: its task runs, its tool is there.
  ordinaut::ExtensionHost* self = &host;
  for (auto* s : {&a, &b}) {
    auto previous = (*s)->on_shutdown;
    const std::string id = (*s)->id;
    (*s)->on_shutdown = [previous, id, self, &journal] {
      previous();
      if (self->tools().get("ext." + id + ".echo")) journal.add(id + ":tool_present");
      for (auto& t : self->snapshot()) {
        if (t.id == id && !t.tasks.empty() && t.tasks[0].state == ordinaut::TaskState::running) {
          journal.add(id + ":task_running");
        }
      }
    };
  }
  add(host, a, true);
  add(host, b, true);
  add(host, lazy, false);
  REQUIRE(host.start().ok());
  CHECK(send(host, "GET", "/ext/alpha/ping").status == 200);
  CHECK(host.event_bus()->subscriber_health("beta").Size() == 1);

  host.shutdown();
  std::vector<std::string> expected = {"alpha:setup",        "beta:setup",         "beta:on_shutdown",
                                       "beta:tool_present",  "beta:task_running",  "beta:task_stopped",
                                       "alpha:on_shutdown",  "alpha:tool_present", "alpha:task_running",
                                       "alpha:task_stopped"};
  CHECK(journal.lines() == expected);

  for (const char* id : {"alpha", "beta"}) {
    CAPTURE(id);
    auto st = extension_status(host, id);
    CHECK(str(st["state"]) == "stopped");
    CHECK(str(st["reason"]) == "the host is shutting down");
    CHECK(str(st["tasks"][0]["state"]) == "stopped");
    CHECK_FALSE(host.tools().get(std::string("ext.") + id + ".echo"));
    CHECK(host.event_bus()->subscriber_health(id).Size() == 0);
    auto r = send(host, "GET", std::string("/ext/") + id + "/ping");
    auto doc = expect_error(r, 503, "unavailable");
    CHECK(str(doc["details"]["state"]) == "stopped");
    CHECK(str(doc["details"]["reason"]) == "the host is shutting down");
    CHECK(str(doc["message"]).find("the host is shutting down") != std::string::npos);
  }
  // Nothing loads after shutdown, not even a lazy extension never used before.
  auto r = send(host, "GET", "/ext/gamma/ping");
  auto doc = expect_error(r, 503, "unavailable");
  CHECK(str(doc["message"]).find("shut down") != std::string::npos);
  CHECK(state_of(host, "gamma") == "discovered");
  CHECK(logs.count("extension_stopped") == 2);
  auto late = host.enable("alpha");
  REQUIRE_FALSE(late.ok());
  CHECK(late.error().code == "host_stopped");
}

TEST_CASE("a hung on_shutdown is bounded by the lifecycle timeout") {
  test_support::LogCapture logs;
  Journal journal;
  Latch latch;
  std::atomic<bool> returned{false};
  auto script = journaled("hangs", journal);
  script->on_shutdown = [&] {
    journal.add("hangs:on_shutdown");
    latch.wait();
    returned = true;
  };
  {
    ordinaut::ExtensionHost host(options(logs, 300ms));
    add(host, script, true);
    REQUIRE(host.start().ok());
    const auto began = Clock::now();
    host.shutdown();
    const auto took = ms_between(began, Clock::now());
    CHECK(took >= 290);
    CHECK(took < 3000);
    CHECK_FALSE(returned.load());
    // The rest of the shutdown still ran: the task was stopped after on_shutdown.
    CHECK(journal.lines() == std::vector<std::string>{"hangs:setup", "hangs:on_shutdown", "hangs:task_stopped"});
    auto st = extension_status(host, "hangs");
    CHECK(str(st["state"]) == "stopped");
    CHECK(str(st["error_phase"]) == "shutdown");
    CHECK(str(st["last_error"]) == "on_shutdown() did not return within 300 ms and was abandoned");
    CHECK(logs.count("shutdown_timeout", "hangs") == 1);
    CHECK_FALSE(host.tools().get("ext.hangs.echo"));
  }  // the host is destroyed while on_shutdown() still hangs: its runtime must stay alive
  latch.open();
  REQUIRE(eventually([&] { return returned.load(); }));
}

TEST_CASE("a hung on_startup is bounded and leaves the extension in error") {
  test_support::LogCapture logs;
  Journal journal;
  Latch latch;
  std::atomic<bool> returned{false};
  auto script = journaled("slow", journal);
  script->on_startup = [&] {
    latch.wait();
    returned = true;
  };
  ordinaut::ExtensionHost host(options(logs, 300ms));
  add(host, script, false);
  REQUIRE(host.start().ok());
  const auto began = Clock::now();
  auto r = send(host, "GET", "/ext/slow/ping");
  const auto took = ms_between(began, Clock::now());
  CHECK(took >= 290);
  CHECK(took < 3000);
  auto doc = expect_error(r, 503, "unavailable");
  CHECK(str(doc["details"]["state"]) == "error");
  CHECK(str(doc["details"]["reason"]) == "startup: on_startup() did not return within 300 ms and was abandoned");
  auto st = extension_status(host, "slow");
  CHECK(str(st["state"]) == "error");
  CHECK(str(st["error_phase"]) == "startup");
  // What setup() started was taken down again.
  CHECK(journal.lines() == std::vector<std::string>{"slow:setup", "slow:task_stopped"});
  CHECK_FALSE(host.tools().get("ext.slow.echo"));
  CHECK(host.event_bus()->subscriber_health("slow").Size() == 0);
  latch.open();
  REQUIRE(eventually([&] { return returned.load(); }));
}

TEST_CASE("on_startup and on_shutdown that throw are reported with their phase") {
  test_support::LogCapture logs;
  auto bad_start = std::make_shared<Script>();
  bad_start->id = "bad_start";
  bad_start->on_startup = [] { throw std::runtime_error("no database"); };
  auto bad_stop = std::make_shared<Script>();
  bad_stop->id = "bad_stop";
  bad_stop->on_shutdown = [] { throw std::runtime_error("flush failed"); };
  ordinaut::ExtensionHost host(options(logs));
  add(host, bad_start, true);
  add(host, bad_stop, true);
  REQUIRE(host.start().ok());
  auto st = extension_status(host, "bad_start");
  CHECK(str(st["state"]) == "error");
  CHECK(str(st["error_phase"]) == "startup");
  CHECK(str(st["last_error"]) == "on_startup() threw: no database");
  host.shutdown();
  st = extension_status(host, "bad_stop");
  CHECK(str(st["state"]) == "stopped");
  CHECK(str(st["error_phase"]) == "shutdown");
  CHECK(str(st["last_error"]) == "on_shutdown() threw: flush failed");
}

TEST_CASE("disable then enable serves again; requests in between get 404 with the reason") {
  test_support::LogCapture logs;
  Journal journal;
  auto script = journaled("toggle", journal);
  ordinaut::ExtensionHost host(options(logs));
  add(host, script, false);
  REQUIRE(host.start().ok());
  CHECK(send(host, "GET", "/ext/toggle/ping").status == 200);
  CHECK(script->instances.load() == 1);

  REQUIRE(host.disable("toggle").ok());
  CHECK(journal.lines() ==
        std::vector<std::string>{"toggle:setup", "toggle:on_shutdown", "toggle:task_stopped"});
  auto doc = expect_error(send(host, "GET", "/ext/toggle/ping"), 404, "not_found");
  CHECK(str(doc["details"]["state"]) == "disabled");
  CHECK(str(doc["details"]["reason"]) == "disabled by the host application");
  CHECK(str(doc["message"]).find("disabled by the host application") != std::string::npos);
  auto st = extension_status(host, "toggle");
  CHECK(str(st["state"]) == "disabled");
  CHECK_FALSE(st["enabled"].GetBool());
  CHECK(str(st["reason"]) == "disabled by the host application");
  CHECK_FALSE(host.tools().get("ext.toggle.echo"));
  CHECK(host.tools().call("ext.toggle.echo", ordinaut::json::object()).error().code == "tool_not_found");
  REQUIRE(host.disable("toggle").ok());  // idempotent
  auto load = host.load("toggle");
  REQUIRE_FALSE(load.ok());
  CHECK(load.error().code == "disabled");

  REQUIRE(host.enable("toggle").ok());
  CHECK(state_of(host, "toggle") == "discovered");  // lazy: loads on its next use
  CHECK(send(host, "GET", "/ext/toggle/ping").status == 200);
  CHECK(script->instances.load() == 2);  // a fresh instance, set up again
  CHECK(host.tools().get("ext.toggle.echo"));
  st = extension_status(host, "toggle");
  CHECK(str(st["state"]) == "active");
  CHECK(st["reason"].IsNull());
  CHECK(str(st["tasks"][0]["state"]) == "running");
  REQUIRE(host.enable("toggle").ok());  // no-op when active
  CHECK(script->instances.load() == 2);

  auto missing = host.disable("nope");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == "not_found");
}

TEST_CASE("enable retries an extension in error; eager extensions load at once") {
  test_support::LogCapture logs;
  auto script = std::make_shared<Script>();
  script->id = "flaky_setup";
  std::atomic<bool> fail{true};
  script->setup = [&](ordinaut::SetupContext&, ordinaut::Router&) {
    if (fail) throw std::runtime_error("dependency down");
  };
  ordinaut::ExtensionHost host(options(logs));
  add(host, script, true);
  REQUIRE(host.start().ok());
  CHECK(state_of(host, "flaky_setup") == "error");
  auto again = host.enable("flaky_setup");
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().message.find("dependency down") != std::string::npos);
  fail = false;
  REQUIRE(host.enable("flaky_setup").ok());
  CHECK(state_of(host, "flaky_setup") == "active");  // eager: loaded by enable itself
}

TEST_CASE("reload picks up changed grants from the manifest on disk") {
  test_support::TempDir dir;
  const auto folder = dir.path() / "probe_a";
  const auto manifest = folder / "extension.json";
  test_support::write_file(manifest, probe_manifest(R"(["ROUTES"])"));
  test_support::place_module(probe_module("probe_a"), folder / "probe_a.so");
  test_support::LogCapture logs;
  auto o = options(logs);
  o.extension_paths = {dir.path()};
  ordinaut::ExtensionHost host(std::move(o));
  REQUIRE(host.start().ok());

  CHECK(grants_served(host) == std::vector<std::string>{"ROUTES"});
  CHECK_FALSE(host.tools().get("ext.probe_a.echo"));

  test_support::write_file(manifest, probe_manifest(R"(["ROUTES","TOOLS"])"));
  CHECK(grants_served(host) == std::vector<std::string>{"ROUTES"});  // nothing changes until reload
  REQUIRE(host.reload("probe_a").ok());
  CHECK(state_of(host, "probe_a") == "active");  // reload sets up at once, even a lazy extension
  CHECK(grants_served(host) == std::vector<std::string>{"ROUTES", "TOOLS"});
  auto echo = host.tools().call("ext.probe_a.echo", parse_json(R"({"x":1})"));
  REQUIRE(echo.ok());
  CHECK(ordinaut::json::dump(*echo) == R"({"x":1})");
  auto st = extension_status(host, "probe_a");
  CHECK(strings(st["capabilities"]["approved"]) == std::vector<std::string>{"ROUTES", "TOOLS"});

  test_support::write_file(manifest, probe_manifest(R"(["ROUTES","BACKGROUND_TASKS"])"));
  REQUIRE(host.reload("probe_a").ok());
  CHECK(grants_served(host) == std::vector<std::string>{"ROUTES", "BACKGROUND_TASKS"});
  CHECK_FALSE(host.tools().get("ext.probe_a.echo"));  // TOOLS withdrawn: the tool is gone
  st = extension_status(host, "probe_a");
  REQUIRE(st["tasks"].Size() == 1);
  CHECK(str(st["tasks"][0]["name"]) == "worker");
  CHECK(str(st["tasks"][0]["state"]) == "running");

  // A manifest that is not valid JSON changes nothing: the old setup keeps serving.
  test_support::write_file(manifest, R"({"id":"probe_a", "grants": [)");
  auto broken = host.reload("probe_a");
  REQUIRE_FALSE(broken.ok());
  CHECK(broken.error().code == "invalid_json");
  CHECK(broken.error().describe().find(manifest.string()) != std::string::npos);
  CHECK(broken.error().message.find("nothing changed") != std::string::npos);
  CHECK(state_of(host, "probe_a") == "active");
  CHECK(grants_served(host) == std::vector<std::string>{"ROUTES", "BACKGROUND_TASKS"});
  CHECK(logs.count("reload_refused", "probe_a") == 1);

  // Nor does a manifest that now names another id.
  test_support::write_file(manifest, probe_manifest(R"(["ROUTES"])", true, "1.0.0", "probe_z"));
  auto renamed = host.reload("probe_a");
  REQUIRE_FALSE(renamed.ok());
  CHECK(renamed.error().code == "invalid_manifest");
  CHECK(renamed.error().pointer == "/id");
  CHECK(grants_served(host) == std::vector<std::string>{"ROUTES", "BACKGROUND_TASKS"});

  // A valid manifest the extension cannot load with leaves it in error, with the reason.
  test_support::write_file(manifest, probe_manifest(R"(["ROUTES"])", true, "2.0.0"));
  auto mismatch = host.reload("probe_a");
  REQUIRE_FALSE(mismatch.ok());
  CHECK(mismatch.error().code == "load_failed");
  st = extension_status(host, "probe_a");
  CHECK(str(st["state"]) == "error");
  CHECK(str(st["error_phase"]) == "load");
  CHECK(str(st["last_error"]).find("manifest says '2.0.0'") != std::string::npos);
  auto doc = expect_error(send(host, "GET", "/ext/probe_a/grants"), 503, "unavailable");
  CHECK(str(doc["details"]["reason"]).find("2.0.0") != std::string::npos);

  // Disabled in the manifest: reload takes it out of service.
  test_support::write_file(manifest, probe_manifest(R"(["ROUTES"])", false));
  REQUIRE(host.reload("probe_a").ok());
  st = extension_status(host, "probe_a");
  CHECK(str(st["state"]) == "disabled");
  CHECK(str(st["reason"]).find("enabled") != std::string::npos);
  doc = expect_error(send(host, "GET", "/ext/probe_a/grants"), 404, "not_found");
  CHECK(str(doc["details"]["state"]) == "disabled");

  test_support::write_file(manifest, probe_manifest(R"(["ROUTES"])"));
  REQUIRE(host.reload("probe_a").ok());
  CHECK(grants_served(host) == std::vector<std::string>{"ROUTES"});
}

TEST_CASE("admin endpoints: scope ext:admin when scopes are required, audit of every action") {
  test_support::LogCapture logs;
  Journal journal;
  auto script = journaled("managed", journal);
  auto o = options(logs);
  o.require_scopes = true;
  ordinaut::ExtensionHost host(std::move(o));
  add(host, script, true);
  REQUIRE(host.start().ok());
  const std::vector<std::pair<std::string, std::string>> admin = {{"X-Scopes", "ext:admin"}};
  const std::vector<std::pair<std::string, std::string>> routes = {{"X-Scopes", "ext:managed:routes"}};

  // Without the scope: 403 naming it, audited, and nothing changes. The
  // extension's own scope is not enough.
  auto doc = expect_error(send(host, "POST", "/ext/_admin/extensions/managed/disable", {}, routes), 403, "forbidden");
  CHECK(str(doc["details"]["required_scope"]) == "ext:admin");
  CHECK(str(doc["message"]).find("ext:admin") != std::string::npos);
  CHECK(logs.count("admin_denied") == 1);
  CHECK(state_of(host, "managed") == "active");
  expect_error(send(host, "GET", "/ext/_admin/extensions/managed/disable"), 403, "forbidden");

  auto r = send(host, "POST", "/ext/_admin/extensions/managed/disable", {}, admin);
  REQUIRE_MESSAGE(r.status == 200, r.body);
  doc = parse_json(r.body);
  CHECK(str(doc["extension"]) == "managed");
  CHECK(str(doc["action"]) == "disable");
  CHECK(str(doc["state"]) == "disabled");
  CHECK(str(doc["reason"]) == "disabled by the admin API (from 127.0.0.1)");
  expect_error(send(host, "GET", "/ext/managed/ping", {}, routes), 404, "not_found");

  r = send(host, "POST", "/ext/_admin/extensions/managed/enable", {}, admin);
  REQUIRE_MESSAGE(r.status == 200, r.body);
  CHECK(str(parse_json(r.body)["state"]) == "active");  // eager
  CHECK(send(host, "GET", "/ext/managed/ping", {}, routes).status == 200);

  r = send(host, "POST", "/ext/_admin/extensions/managed/reload", {}, admin);
  REQUIRE_MESSAGE(r.status == 200, r.body);
  CHECK(str(parse_json(r.body)["state"]) == "active");
  CHECK(script->instances.load() == 3);

  // Every admin action is in the audit log with who, what and the outcome.
  std::size_t actions = 0;
  for (const auto& rec : logs.audits()) {
    if (rec.event != "admin_action") continue;
    ++actions;
    auto fields = parse_json(rec.fields_json);
    CHECK(str(fields["extension"]) == "managed");
    CHECK(str(fields["remote"]) == "127.0.0.1");
    CHECK(fields["ok"].GetBool());
  }
  CHECK(actions == 3);

  // Wrong method, unknown action, unknown extension, bare admin path.
  r = send(host, "GET", "/ext/_admin/extensions/managed/reload", {}, admin);
  expect_error(r, 405, "method_not_allowed");
  CHECK(r.headers.get("Allow") == "POST");
  doc = expect_error(send(host, "POST", "/ext/_admin/extensions/managed/restart", {}, admin), 404, "not_found");
  CHECK(str(doc["message"]).find("enable|disable|reload") != std::string::npos);
  doc = expect_error(send(host, "POST", "/ext/_admin/extensions/ghost/enable", {}, admin), 404, "not_found");
  CHECK(str(doc["details"]["extension"]) == "ghost");
  expect_error(send(host, "POST", "/ext/_admin", {}, admin), 404, "not_found");
  CHECK(state_of(host, "managed") == "active");
}

TEST_CASE("admin endpoints without required scopes, and a refused reload through them") {
  test_support::TempDir dir;
  const auto manifest = dir.path() / "probe_a" / "extension.json";
  test_support::write_file(manifest, probe_manifest(R"(["ROUTES"])"));
  test_support::place_module(probe_module("probe_a"), dir.path() / "probe_a" / "probe_a.so");
  test_support::LogCapture logs;
  auto o = options(logs);
  o.extension_paths = {dir.path()};
  ordinaut::ExtensionHost host(std::move(o));
  REQUIRE(host.start().ok());
  CHECK(send(host, "GET", "/ext/probe_a/ping").status == 200);

  test_support::write_file(manifest, "{\"id\": \"probe_a\",,}");
  auto doc = expect_error(send(host, "POST", "/ext/_admin/extensions/probe_a/reload"), 422, "invalid_json");
  CHECK(str(doc["details"]["file"]) == manifest.string());
  CHECK(str(doc["details"]["state"]) == "active");
  CHECK(send(host, "GET", "/ext/probe_a/ping").status == 200);

  test_support::write_file(manifest, probe_manifest(R"(["ROUTES"])", true, "3.0.0"));
  doc = expect_error(send(host, "POST", "/ext/_admin/extensions/probe_a/reload"), 409, "load_failed");
  CHECK(str(doc["details"]["state"]) == "error");

  test_support::write_file(manifest, probe_manifest(R"(["ROUTES"])"));
  auto r = send(host, "POST", "/ext/_admin/extensions/probe_a/reload");
  REQUIRE_MESSAGE(r.status == 200, r.body);
  CHECK(send(host, "GET", "/ext/probe_a/ping").status == 200);
  std::size_t failed_actions = 0;
  for (const auto& rec : logs.audits()) {
    if (rec.event == "admin_action" && !parse_json(rec.fields_json)["ok"].GetBool()) ++failed_actions;
  }
  CHECK(failed_actions == 2);
}

TEST_CASE("requests, tool calls and status reads racing with reload, disable and enable") {
  test_support::LogCapture logs;
  Journal journal;
  auto script = journaled("busy", journal);
  auto inner = script->setup;
  script->setup = [inner](ordinaut::SetupContext& context, ordinaut::Router& router) {
    inner(context, router);
    if (!context.background().start_periodic("tick", 1ms, [](std::stop_token) {})) throw std::runtime_error("tick");
    router.get("/slow", [](ordinaut::Request&) {
      std::this_thread::sleep_for(2ms);  // keeps requests inside the old runtime across a reload
      return ordinaut::Response::text(200, "done");
    });
  };
  ordinaut::ExtensionHost host(options(logs));
  add(host, script, false);
  REQUIRE(host.start().ok());

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, unavailable{0}, unexpected{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] {
      while (!stop.load()) {
        if (i == 3) {
          auto r = host.tools().call("ext.busy.echo", ordinaut::json::object());
          if (!r.ok() && r.error().code != "tool_not_found") ++unexpected;
          (void)host.status();
          (void)host.snapshot();
          continue;
        }
        auto r = send(host, "GET", i == 0 ? "/ext/busy/slow" : i == 1 ? "/ext/busy/ping" : "/ext/busy/health");
        if (r.status == 200) {
          ++ok;
        } else if (r.status == 404 || r.status == 503) {
          ++unavailable;  // disabled, or health while not active
        } else {
          ++unexpected;
        }
      }
    });
  }
  // Two managers at once, so that management also races with itself.
  std::thread second_manager([&] {
    for (int i = 0; i < 15; ++i) {
      (void)host.reload("busy");
      (void)send(host, "POST", "/ext/_admin/extensions/busy/enable");
    }
  });
  for (int i = 0; i < 15; ++i) {
    REQUIRE(host.reload("busy").ok());
    std::this_thread::sleep_for(2ms);
    REQUIRE(host.disable("busy").ok());
    std::this_thread::sleep_for(2ms);
    REQUIRE(host.enable("busy").ok());
  }
  second_manager.join();
  REQUIRE(host.enable("busy").ok());
  std::this_thread::sleep_for(20ms);
  stop = true;
  for (auto& t : clients) t.join();
  CHECK(unexpected.load() == 0);
  CHECK(ok.load() > 0);
  CHECK(send(host, "GET", "/ext/busy/ping").status == 200);
  CHECK(state_of(host, "busy") == "active");
  // Every instance that was set up was also taken down, except the live one.
  int setups = 0, shutdowns = 0;
  for (const auto& line : journal.lines()) {
    setups += line == "busy:setup";
    shutdowns += line == "busy:on_shutdown";
  }
  CHECK(setups == shutdowns + 1);
  CHECK(setups == script->instances.load());
  host.shutdown();
  CHECK(host.tools().list().empty());
}
