// observability and events_demo in process: a real ExtensionHost with the
// built modules (lib/extensions/*, examples/listener) and a linked-in test
// extension, requests through ExtensionHost::handle(), no sockets.
#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

#include <doctest/doctest.h>

#include <ordinaut/extension.hpp>
#include <ordinaut/host.hpp>
#include <ordinaut/json.hpp>
#include <ordinaut/redis_bus.hpp>
#include <ordinaut/testing.hpp>

#include "obs_support.hpp"

namespace {

using namespace std::chrono_literals;
using obs_test::eventually;
using obs_test::value_of;
using ordinaut::Capability;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  REQUIRE_MESSAGE(v != nullptr, name << " is not set (run through meson test)");
  return v;
}

std::filesystem::path builtin_dir() { return std::filesystem::path(env("ORDINAUT_BUILD_ROOT")) / "lib" / "extensions"; }

ordinaut::Response send(ordinaut::ExtensionHost& host, std::string method, std::string target, std::string body = {},
                        std::vector<std::pair<std::string, std::string>> headers = {}) {
  ordinaut::Request r;
  r.method = std::move(method);
  auto q = target.find('?');
  r.path = target.substr(0, q);
  if (q != std::string::npos) r.query_string = target.substr(q + 1);
  r.body = std::move(body);
  r.remote_addr = "test";
  for (auto& [k, v] : headers) r.headers.add(k, v);
  return host.handle(r);
}

std::string metrics(ordinaut::ExtensionHost& host) {
  auto r = send(host, "GET", "/ext/observability/metrics");
  REQUIRE(r.status == 200);
  CHECK(r.headers.get("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
  return r.body;
}

// Scrapes until `series` has the value `expected` (deliveries are asynchronous)
// and returns that exposition.
std::string metrics_when(ordinaut::ExtensionHost& host, const std::string& series, double expected) {
  std::string body;
  const bool reached = eventually([&] {
    body = metrics(host);
    return value_of(body, series) == expected;
  });
  REQUIRE_MESSAGE(reached, series << " never reached " << expected << "; last value " << value_of(body, series));
  return body;
}

// A gate a subscriber waits on, so a test can hold deliveries back.
struct Gate {
  std::mutex mutex;
  std::condition_variable cv;
  bool open = false;
  void wait() {
    std::unique_lock lock(mutex);
    cv.wait_for(lock, 10s, [&] { return open; });
  }
  void release() {
    {
      std::lock_guard lock(mutex);
      open = true;
    }
    cv.notify_all();
  }
};

Gate* g_gate = nullptr;
std::atomic<int> g_entered{0};  // handler calls that reached the gate

// Linked-in extension that fails on purpose, calls tools, registers business
// metrics and subscribes slowly.
class Probe final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override { return {"probe", "Probe", "1.0.0", "test extension"}; }
  ordinaut::CapabilitySet requested_capabilities() const override {
    return {Capability::ROUTES, Capability::TOOLS, Capability::EVENTS_SUB};
  }
  std::optional<ordinaut::Router> setup(ordinaut::SetupContext& context) override {
    auto& m = context.metrics();
    widgets_ = &m.counter("widgets_total", "Widgets made.", {{"color", "red"}});
    latency_ = &m.histogram("step_seconds", "Step time.", {0.1, 1});
    context.tool_registrar().add({.name = "ext.probe.echo",
                                  .title = {},
                                  .description = "Returns its input",
                                  .input_schema = R"({"type":"object"})",
                                  .output_schema = {},
                                  .function = [](const ordinaut::JsonValue& in, ordinaut::ToolContext&) {
                                    return ordinaut::json::copy(in);
                                  }});
    context.tool_registrar().add({.name = "ext.probe.fail",
                                  .title = {},
                                  .description = "Always fails",
                                  .input_schema = R"({"type":"object"})",
                                  .output_schema = {},
                                  .function = [](const ordinaut::JsonValue&, ordinaut::ToolContext&) -> ordinaut::Json {
                                    throw std::runtime_error("no");
                                  }});
    subscriber_ = &context.events_subscriber();
    tools_ = &context.tools();
    ordinaut::Router router;
    router.get("/fail", [](ordinaut::Request&) -> ordinaut::Response { throw std::runtime_error("boom"); });
    router.get("/items/{id}", [this](ordinaut::Request&) {
      widgets_->inc(2);
      latency_->observe(0.5);
      return ordinaut::Response::json_text(200, "{}");
    });
    router.post("/call/{tool}", [this](ordinaut::Request& r) {
      auto res = tools_->call(std::string("ext.probe.") + std::string(r.param("tool")), ordinaut::json::object());
      return ordinaut::Response::json_text(res ? 200 : 500, "{}");
    });
    router.post("/subscribe", [this](ordinaut::Request&) {
      auto s = subscriber_->subscribe("slow.*", [](const ordinaut::Event&) {
        ++g_entered;
        if (g_gate) g_gate->wait();
      });
      slow_ = *s;
      return ordinaut::Response::json_text(200, "{}");
    });
    router.post("/unsubscribe", [this](ordinaut::Request&) {
      slow_.cancel();
      return ordinaut::Response::json_text(200, "{}");
    });
    return router;
  }

 private:
  ordinaut::Counter* widgets_ = nullptr;
  ordinaut::Histogram* latency_ = nullptr;
  const ordinaut::EventSubscriber* subscriber_ = nullptr;
  const ordinaut::ToolView* tools_ = nullptr;
  ordinaut::Subscription slow_;
};

// Runs one healthy task and one that always throws.
class Worker final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override { return {"worker", "Worker", "1.0.0", "background tasks"}; }
  ordinaut::CapabilitySet requested_capabilities() const override { return {Capability::BACKGROUND_TASKS}; }
  std::optional<ordinaut::Router> setup(ordinaut::SetupContext& context) override {
    auto& tasks = context.background();
    ordinaut::TaskOptions fast;
    fast.initial_backoff = 5ms;
    fast.max_backoff = 20ms;
    auto steady = tasks.start("steady", [](std::stop_token stop) {
      while (!stop.stop_requested()) std::this_thread::sleep_for(5ms);
    });
    auto flaky = tasks.start_periodic("flaky", 5ms, [](std::stop_token) { throw std::runtime_error("flaky"); }, fast);
    if (!steady || !flaky) throw std::runtime_error("cannot start the tasks");
    return std::nullopt;
  }
};

class Broken final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override { return {"broken", "Broken", "1.0.0", "setup throws"}; }
  ordinaut::CapabilitySet requested_capabilities() const override { return {Capability::ROUTES}; }
  std::optional<ordinaut::Router> setup(ordinaut::SetupContext&) override { throw std::runtime_error("broken"); }
};

struct Fixture {
  std::shared_ptr<ordinaut::EventBus> bus;
  std::unique_ptr<ordinaut::ExtensionHost> host;

  explicit Fixture(ordinaut::MemoryBusOptions bus_options = {})
      : Fixture(ordinaut::make_memory_event_bus(bus_options)) {}
  explicit Fixture(std::shared_ptr<ordinaut::EventBus> event_bus) : bus(std::move(event_bus)) {
    ordinaut::HostOptions o;
    o.read_environment = false;
    o.use_registered_extensions = false;
    o.builtin_dirs = {builtin_dir()};
    o.extension_paths = {env("ORDINAUT_LISTENER_DIR")};
    o.event_bus = bus;
    o.log_sink = [](const ordinaut::LogRecord&) {};
    host = std::make_unique<ordinaut::ExtensionHost>(std::move(o));
    host->add_linked("probe", [] { return std::make_unique<Probe>(); },
                     ordinaut::CapabilitySet{Capability::ROUTES, Capability::TOOLS, Capability::EVENTS_SUB}, true);
    host->add_linked("broken", [] { return std::make_unique<Broken>(); }, ordinaut::CapabilitySet{Capability::ROUTES},
                     true);
    host->add_linked("worker", [] { return std::make_unique<Worker>(); },
                     ordinaut::CapabilitySet{Capability::BACKGROUND_TASKS}, true);
    REQUIRE(host->start().ok());
  }
  ~Fixture() {
    host.reset();
    bus->shutdown();
  }
};

ordinaut::Json payload(const std::string& text) {
  auto doc = ordinaut::json::parse(text);
  REQUIRE(doc.ok());
  return std::move(doc).value();
}

}  // namespace

TEST_CASE("task.* events on the bus reach the task statistics, labelled by their publisher") {
  Fixture f;
  auto publish = [&](const char* topic, const char* source, const std::string& json) {
    REQUIRE(f.bus->publish(topic, source, payload(json)).ok());
  };
  // The scheduler's shapes (its own runs are published as source "scheduler";
  // "core" here keeps this test apart from whatever the loaded scheduler does).
  const std::string started =
      R"({"id":"run_1","task_id":"tsk_1","status":"running","started_at":"2026-12-02T10:00:00.000Z","finished_at":null})";
  publish("task.created", "core", R"({"id":"tsk_1","title":"t"})");
  publish("task.run.started", "core", started);
  publish("task.run.succeeded", "core",
          R"({"id":"run_1","task_id":"tsk_1","status":"succeeded","started_at":"2026-12-02T10:00:00.000Z","finished_at":"2026-12-02T10:00:00.040Z"})");
  publish("task.run.started", "probe", R"({"id":"run_2","task_id":"tsk_2","status":"running"})");
  publish("task.run.failed", "core",
          R"({"id":"run_3","task_id":"tsk_1","status":"failed","started_at":null,"finished_at":"2026-12-02T10:00:01Z"})");
  publish("task.started", "core", R"({"task_id":"t1"})");                              // retired topic
  publish("task.run.succeeded", "core", R"({"id":"run_4","task_id":"tsk_1","started_at":"soon"})");  // bad time
  publish("task.run.started", "core", R"(["not","an","object"])");                     // wrong shape

  const std::string body = metrics_when(*f.host, R"(ordinaut_task_events_total{kind="invalid"})", 2);
  CHECK(value_of(body, R"(ordinaut_task_runs_started_total{source="core"})") == 1);
  CHECK(value_of(body, R"(ordinaut_task_runs_started_total{source="probe"})") == 1);
  CHECK(value_of(body, R"(ordinaut_task_runs_running{source="probe"})") == 1);
  CHECK(value_of(body, R"(ordinaut_task_runs_running{source="core"})") == 0);
  CHECK(value_of(body, R"(ordinaut_task_runs_finished_total{source="core",status="succeeded"})") == 1);
  CHECK(value_of(body, R"(ordinaut_task_runs_finished_total{source="core",status="failed"})") == 1);
  CHECK(value_of(body, R"(ordinaut_task_run_duration_seconds_count{source="core",status="succeeded"})") == 1);
  CHECK(value_of(body, R"(ordinaut_task_run_duration_seconds_sum{source="core",status="succeeded"})") ==
        doctest::Approx(0.04));
  CHECK(value_of(body, R"(ordinaut_task_run_duration_seconds_count{source="core",status="failed"})") == 0);
  CHECK(value_of(body, R"(ordinaut_task_changes_total{change="created",source="core"})") == 1);
  // The scheduler's series exist before it runs anything.
  CHECK(value_of(body, R"(ordinaut_task_runs_finished_total{source="scheduler",status="skipped"})") >= 0);
  CHECK(value_of(body, R"(ordinaut_task_events_total{kind="ignored"})") >= 1);
  CHECK(value_of(body, "ordinaut_task_events_subscribed") == 1);
  CHECK(body.find("\"run_1") == std::string::npos);
}

TEST_CASE("HTTP metrics carry route templates, status classes and errors, never raw paths") {
  Fixture f;
  for (int i = 0; i < 3; ++i) CHECK(send(*f.host, "GET", "/ext/probe/items/secret-" + std::to_string(i)).status == 200);
  CHECK(send(*f.host, "GET", "/ext/probe/fail").status == 500);
  CHECK(send(*f.host, "GET", "/ext/probe/no-such-route-xyz").status == 404);
  CHECK(send(*f.host, "GET", "/ext/no_such_extension_xyz").status == 404);
  const std::string body = metrics(*f.host);
  CHECK(body.find("secret-") == std::string::npos);
  CHECK(body.find("xyz") == std::string::npos);
  CHECK(value_of(body,
                 R"(ordinaut_http_requests_total{extension="probe",method="GET",route="/items/{id}",status_class="2xx"})") ==
        3);
  CHECK(value_of(body, R"(ordinaut_http_requests_total{extension="probe",method="GET",route="/fail",status_class="5xx"})") ==
        1);
  CHECK(value_of(body,
                 R"m(ordinaut_http_requests_total{extension="probe",method="*",route="(unrouted)",status_class="4xx"})m") ==
        1);
  CHECK(value_of(body, R"m(ordinaut_http_requests_total{extension="(host)",method="*",route="(host)",status_class="4xx"})m") ==
        1);
  const std::string items = R"(extension="probe",method="GET",route="/items/{id}",status_class="2xx")";
  CHECK(value_of(body, "ordinaut_http_request_duration_seconds_count{" + items + "}") == 3);
  CHECK(value_of(body, "ordinaut_http_request_duration_seconds_bucket{" + items + ",le=\"+Inf\"}") == 3);
  CHECK(value_of(body, "ordinaut_http_request_duration_seconds_bucket{" + items + ",le=\"10\"}") == 3);
  const std::string fail = R"(extension="probe",method="GET",route="/fail")";
  CHECK(value_of(body, "ordinaut_http_request_duration_seconds_count{" + fail + ",status_class=\"5xx\"}") == 1);
  CHECK(value_of(body, "ordinaut_http_request_duration_seconds_count{" + fail + ",status_class=\"2xx\"}") == -1);
  CHECK(value_of(body, R"(ordinaut_extension_requests_total{extension="probe"})") == 5);
  CHECK(value_of(body, R"(ordinaut_extension_errors_total{extension="probe"})") == 1);
  CHECK(value_of(body, R"(ordinaut_extension_request_duration_seconds_count{extension="probe"})") == 5);
  // Routes never requested have no series yet.
  CHECK(body.find(R"(route="/subscribe")") == std::string::npos);
}

TEST_CASE("extension state, load time, tools and business metrics are exported") {
  Fixture f;
  CHECK(send(*f.host, "GET", "/ext/probe/items/1").status == 200);
  CHECK(send(*f.host, "POST", "/ext/probe/call/echo").status == 200);
  CHECK(send(*f.host, "POST", "/ext/probe/call/fail").status == 500);
  CHECK(send(*f.host, "POST", "/ext/probe/call/fail").status == 500);
  const std::string body = metrics(*f.host);
  CHECK(value_of(body, R"(ordinaut_extension_state{extension="probe",state="active"})") == 1);
  CHECK(value_of(body, R"(ordinaut_extension_state{extension="probe",state="error"})") == 0);
  CHECK(value_of(body, R"(ordinaut_extension_state{extension="broken",state="error"})") == 1);
  CHECK(value_of(body, R"(ordinaut_extension_state{extension="broken",state="active"})") == 0);
  CHECK(value_of(body, R"(ordinaut_extension_state{extension="webui",state="discovered"})") == 1);  // lazy
  CHECK(value_of(body, R"(ordinaut_extension_load_duration_seconds{extension="probe"})") > 0);
  CHECK(value_of(body, R"(ordinaut_extension_info{extension="listener",version="1.0.0",source="path"})") == 1);
  CHECK(value_of(body, R"(ordinaut_tool_calls_total{tool="ext.probe.fail",owner="probe"})") == 2);
  CHECK(value_of(body, R"(ordinaut_tool_errors_total{tool="ext.probe.fail",owner="probe"})") == 2);
  CHECK(value_of(body, R"(ordinaut_tool_calls_total{tool="ext.probe.echo",owner="probe"})") == 1);
  CHECK(value_of(body, R"(ordinaut_tool_errors_total{tool="ext.probe.echo",owner="probe"})") == 0);
  CHECK(value_of(body, R"(ordinaut_tool_call_duration_seconds_count{tool="ext.probe.echo",owner="probe"})") == 1);
  CHECK(value_of(body, R"(ext_probe_widgets_total{color="red"})") == 2);
  CHECK(value_of(body, R"(ext_probe_step_seconds_bucket{le="1"})") == 1);
  CHECK(value_of(body, R"(ext_probe_step_seconds_bucket{le="0.1"})") == 0);
  CHECK(body.find("# TYPE ext_probe_step_seconds histogram\n") != std::string::npos);
  CHECK(value_of(body, "process_resident_memory_bytes") > 1e6);
  CHECK(value_of(body, "process_threads") >= 2);
  CHECK(value_of(body, "process_open_fds") > 2);
  CHECK(value_of(body, "process_start_time_seconds") > 1.6e9);
}

TEST_CASE("background tasks' state and restarts are exported") {
  Fixture f;
  const std::string flaky = R"(extension="worker",task="flaky")";
  std::string body;
  REQUIRE(eventually([&] {
    body = metrics(*f.host);
    return value_of(body, "ordinaut_background_task_restarts_total{" + flaky + "}") >= 2;
  }));
  CHECK(value_of(body, R"(ordinaut_background_task_state{extension="worker",task="steady",state="running"})") == 1);
  CHECK(value_of(body, R"(ordinaut_background_task_state{extension="worker",task="steady",state="failed"})") == 0);
  CHECK(value_of(body, R"(ordinaut_background_task_restarts_total{extension="worker",task="steady"})") == 0);
  double flaky_states = 0;
  for (const char* state : {"running", "backing_off", "failed", "stopped"}) {
    flaky_states += value_of(body, "ordinaut_background_task_state{" + flaky + ",state=\"" + state + "\"}");
  }
  CHECK(flaky_states == 1);  // exactly one state is current
  CHECK(value_of(body, R"(ordinaut_extension_state{extension="worker",state="active"})") == 1);
}

TEST_CASE("event delivery, drops and lag are exported per extension and never go down") {
  Gate gate;
  g_gate = &gate;
  ordinaut::MemoryBusOptions small;
  small.queue_capacity = 2;
  {
    Fixture f(small);
    REQUIRE(send(*f.host, "POST", "/ext/probe/subscribe").status == 200);
    g_entered = 0;
    REQUIRE(f.bus->publish("slow.x", "core", payload("{}")).ok());
    REQUIRE(eventually([] { return g_entered.load() == 1; }));
    for (int i = 0; i < 9; ++i) REQUIRE(f.bus->publish("slow.x", "core", payload("{}")).ok());
    // The worker holds the first event in the gate, two wait in the queue, seven were dropped.
    std::string body = metrics_when(*f.host, R"(ordinaut_events_dropped_total{extension="probe"})", 7);
    CHECK(value_of(body, R"(ordinaut_events_lag{extension="probe"})") == 2);
    CHECK(value_of(body, R"(ordinaut_event_subscriptions{extension="probe"})") == 1);
    CHECK(value_of(body, R"(ordinaut_events_published_total{bus="memory"})") == 10);
    gate.release();
    // The worker counts an event delivered as its handler returns and takes it
    // off the queue's depth just after: wait for both, not for the first.
    CHECK(eventually([&] {
      body = metrics(*f.host);
      return value_of(body, R"(ordinaut_events_delivered_total{extension="probe"})") == 3 &&
             value_of(body, R"(ordinaut_events_lag{extension="probe"})") == 0;
    }));
    CHECK(value_of(body, R"(ordinaut_events_delivered_total{extension="probe"})") == 3);
    CHECK(value_of(body, R"(ordinaut_events_lag{extension="probe"})") == 0);
    // The bus forgets a cancelled subscription's counters; the exported totals stay.
    REQUIRE(send(*f.host, "POST", "/ext/probe/unsubscribe").status == 200);
    body = metrics(*f.host);
    CHECK(value_of(body, R"(ordinaut_event_subscriptions{extension="probe"})") == 0);
    CHECK(value_of(body, R"(ordinaut_events_delivered_total{extension="probe"})") == 3);
    CHECK(value_of(body, R"(ordinaut_events_dropped_total{extension="probe"})") == 7);
  }
  g_gate = nullptr;
}

TEST_CASE("events_demo publishes events_demo.{name} and the listener receives it") {
  Fixture f;
  auto r = send(*f.host, "POST", "/ext/events_demo/publish/orders.created", R"({"order":42})",
                {{"Content-Type", "application/json"}});
  REQUIRE(r.status == 200);
  auto doc = payload(r.body);
  CHECK(std::string(doc["topic"].GetString()) == "events_demo.orders.created");
  const std::string id = doc["id"].GetString();
  CHECK(!id.empty());
  ordinaut::Response received;
  REQUIRE(eventually([&] {
    received = send(*f.host, "GET", "/ext/listener/received");
    return received.body.find(id) != std::string::npos;
  }));
  auto got = payload(received.body);
  CHECK(got["total"].GetUint64() == 1);
  const auto& e = got["events"][0];
  CHECK(std::string(e["id"].GetString()) == id);
  CHECK(std::string(e["source"].GetString()) == "events_demo");
  CHECK(e["payload"]["order"].GetInt() == 42);
  CHECK(send(*f.host, "GET", "/ext/listener/received?limit=0").status == 400);
  const std::string body = metrics(*f.host);
  CHECK(value_of(body, "ext_events_demo_published_total") == 1);
  CHECK(value_of(body, R"(ext_listener_received_total{source="events_demo"})") == 1);
  REQUIRE(eventually([&] { return send(*f.host, "GET", "/ext/events_demo/recent").body.find(id) != std::string::npos; }));
}

TEST_CASE("events_demo refuses bad input with a clear error and publishes nothing") {
  Fixture f;
  auto check_error = [](const ordinaut::Response& r, int status, const std::string& needle) {
    CHECK(r.status == status);
    auto doc = payload(r.body);
    CHECK(std::string(doc["error"].GetString()) == (status == 403 ? "forbidden" : "bad_request"));
    CHECK_MESSAGE(std::string(doc["message"].GetString()).find(needle) != std::string::npos, r.body);
    CHECK(doc["details"].IsObject());
    return doc;
  };
  auto bad = check_error(send(*f.host, "POST", "/ext/events_demo/publish/x", "{\n  \"a\" 1}"), 400,
                         "not valid JSON: line 2, column");
  CHECK(bad["details"]["offset"].GetUint64() == 8);  // the '1' where a ':' belongs
  CHECK(bad["details"]["line"].GetUint64() == 2);
  CHECK(bad["details"]["column"].GetUint64() == 7);
  check_error(send(*f.host, "POST", "/ext/events_demo/publish/x", "  "), 400, "body is empty");
  check_error(send(*f.host, "POST", "/ext/events_demo/publish/bad%20name", "{}"), 400, "event name \"bad name\"");
  check_error(send(*f.host, "POST", "/ext/events_demo/publish/a*b", "{}"), 400, "is invalid");
  check_error(send(*f.host, "GET", "/ext/events_demo/stream/a%20b"), 400, "stream name");
  check_error(send(*f.host, "GET", "/ext/events_demo/stream/x?group=a%20b"), 400, "group must be");
  check_error(send(*f.host, "GET", "/ext/events_demo/stream/x?consumer=c1"), 400, "consumer needs group");
  check_error(send(*f.host, "GET", "/ext/events_demo/stream/x?heartbeat=0"), 400, "heartbeat");
  check_error(send(*f.host, "GET", "/ext/events_demo/stream/x?heartbeat=abc"), 400, "heartbeat");
  check_error(send(*f.host, "GET", "/ext/events_demo/recent?name=a%20b"), 400, "name must be");
  auto health = f.bus->health();
  CHECK(health["published"].GetUint64() == 0);
  const std::string body = metrics(*f.host);
  CHECK(value_of(body, "ext_events_demo_published_total") == 0);
  CHECK(value_of(body, "ext_events_demo_streams") == 0);
}

namespace {

// Loads a built module's factory, as the host does, to run it under TestClient.
std::unique_ptr<ordinaut::Extension> load_module(const std::string& name) {
  auto path = builtin_dir() / name / (name + ".so");
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  REQUIRE_MESSAGE(handle != nullptr, ::dlerror());
  auto factory = reinterpret_cast<ordinaut::Extension* (*)()>(::dlsym(handle, ORDINAUT_ENTRY_FACTORY_SYMBOL));
  const bool found = factory != nullptr;
  REQUIRE_MESSAGE(found, "no factory symbol in " << path);
  return std::unique_ptr<ordinaut::Extension>(factory());
}

// events_demo under TestClient with these grants, on `bus`.
std::unique_ptr<ordinaut::testing::TestClient> events_demo_client(std::shared_ptr<ordinaut::EventBus> bus,
                                                                  ordinaut::CapabilitySet grants) {
  ordinaut::testing::TestClientOptions options;
  options.grants = grants;
  options.event_bus = std::move(bus);
  auto client = std::make_unique<ordinaut::testing::TestClient>(load_module("events_demo"), options);
  REQUIRE(client->state() == ordinaut::ExtensionState::active);
  return client;
}

const ordinaut::CapabilitySet kAllGrants = {Capability::ROUTES, Capability::EVENTS_PUB, Capability::EVENTS_SUB};

// A client connection: collects writes; "leaves" when told to.
class FakeSink final : public ordinaut::StreamSink {
 public:
  bool write(std::string_view data) override {
    std::lock_guard lock(mutex_);
    if (gone_) return false;
    text_ += data;
    return true;
  }
  bool is_open() const override {
    std::lock_guard lock(mutex_);
    return !gone_;
  }
  void leave() {
    std::lock_guard lock(mutex_);
    gone_ = true;
  }
  std::string text() const {
    std::lock_guard lock(mutex_);
    return text_;
  }

 private:
  mutable std::mutex mutex_;
  std::string text_;
  bool gone_ = false;
};

}  // namespace

TEST_CASE("events_demo without EVENTS_PUB or EVENTS_SUB answers 403 naming the capability") {
  auto owned = events_demo_client(nullptr, {Capability::ROUTES});
  auto& client = *owned;
  auto r = client.post("/publish/x", "{}");
  CHECK(r.status == 403);
  CHECK(r.body.find(R"("missing_capability":"EVENTS_PUB")") != std::string::npos);
  r = client.get("/stream/x");
  CHECK(r.status == 403);
  CHECK(r.body.find(R"("missing_capability":"EVENTS_SUB")") != std::string::npos);
  CHECK(client.get("/recent").body.find(R"("recording":false)") != std::string::npos);
}

TEST_CASE("an SSE stream writes id, event and data, heartbeats, and unsubscribes when the client leaves") {
  auto bus = ordinaut::make_memory_event_bus();
  auto owned = events_demo_client(bus, kAllGrants);
  auto& client = *owned;
  auto subscriptions = [&] { return bus->subscriber_health("events_demo").Size(); };
  CHECK(subscriptions() == 1);  // the history recorder

  auto response = client.get("/stream/news?heartbeat=0.1");
  REQUIRE(response.status == 200);
  CHECK(response.headers.get("Content-Type") == "text/event-stream");
  REQUIRE(response.stream);
  CHECK(subscriptions() == 2);  // subscribed before the stream starts: nothing is missed
  FakeSink sink;
  std::thread producer([&] { response.stream(sink); });
  REQUIRE(eventually([&] { return sink.text().find(": events_demo stream of events_demo.news") != std::string::npos; }));
  auto published = client.post("/publish/news", R"({"headline":"hi"})");
  REQUIRE(published.status == 200);
  const std::string id = payload(published.body)["id"].GetString();
  REQUIRE(eventually([&] { return sink.text().find("data: ") != std::string::npos; }));
  REQUIRE(eventually([&] { return sink.text().find(": heartbeat\n\n") != std::string::npos; }));
  const std::string text = sink.text();
  const std::string frame = "id: " + id + "\nevent: events_demo.news\ndata: {";
  CHECK(text.find(frame) != std::string::npos);
  auto data_at = text.find("data: ") + 6;
  auto event_json = payload(text.substr(data_at, text.find('\n', data_at) - data_at));
  CHECK(std::string(event_json["id"].GetString()) == id);
  CHECK(std::string(event_json["topic"].GetString()) == "events_demo.news");
  CHECK(std::string(event_json["payload"]["headline"].GetString()) == "hi");
  // Another name does not reach this stream (it would come before the next "news").
  REQUIRE(client.post("/publish/other", "1").status == 200);
  REQUIRE(client.post("/publish/news", "2").status == 200);
  REQUIRE(eventually([&] { return sink.text().find(R"("payload":2)") != std::string::npos; }));
  CHECK(sink.text().find("events_demo.other") == std::string::npos);

  sink.leave();
  producer.join();  // returns once a write fails
  response = {};    // the producer is gone: its lease cancels the subscription
  CHECK(subscriptions() == 1);
}

TEST_CASE("Last-Event-ID replays the recorded events after it, then goes on live without duplicates") {
  auto bus = ordinaut::make_memory_event_bus();
  auto owned = events_demo_client(bus, kAllGrants);
  auto& client = *owned;
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto r = client.post("/publish/r", std::to_string(i));
    REQUIRE(r.status == 200);
    ids.push_back(payload(r.body)["id"].GetString());
  }
  REQUIRE(client.post("/publish/unrelated", "99").status == 200);
  REQUIRE(eventually([&] { return client.get("/recent?name=r").body.find(ids[4]) != std::string::npos; }));

  auto response = client.request("GET", "/stream/r?heartbeat=0.1", {}, {{"Last-Event-ID", ids[1]}});
  REQUIRE(response.status == 200);
  FakeSink sink;
  std::thread producer([&] { response.stream(sink); });
  REQUIRE(eventually([&] { return sink.text().find("id: " + ids[4]) != std::string::npos; }));
  auto live = client.post("/publish/r", "5");
  const std::string live_id = payload(live.body)["id"].GetString();
  REQUIRE(eventually([&] { return sink.text().find("id: " + live_id) != std::string::npos; }));
  sink.leave();
  producer.join();
  const std::string text = sink.text();
  CHECK(text.find("id: " + ids[0] + "\n") == std::string::npos);
  CHECK(text.find("id: " + ids[1] + "\n") == std::string::npos);
  std::size_t last = 0;
  for (const auto& expected : {ids[2], ids[3], ids[4], live_id}) {
    auto at = text.find("id: " + expected + "\n");
    REQUIRE(at != std::string::npos);
    CHECK(at > last);
    CHECK(text.find("id: " + expected + "\n", at + 1) == std::string::npos);  // exactly once
    last = at;
  }
  CHECK(text.find("\"payload\":99") == std::string::npos);

  // An id the history does not hold: said so, then live.
  auto unknown = client.request("GET", "/stream/r?heartbeat=0.1&last_event_id=0-0", {}, {});
  FakeSink sink2;
  std::thread producer2([&] { unknown.stream(sink2); });
  REQUIRE(eventually([&] { return sink2.text().find("last-event-id 0-0 is not among") != std::string::npos; }));
  sink2.leave();
  producer2.join();

  // The id is looked up among this stream's topics only: an id of another
  // topic's event is not a position in this stream.
  auto elsewhere = client.post("/publish/unrelated", "100");
  const std::string elsewhere_id = payload(elsewhere.body)["id"].GetString();
  REQUIRE(eventually([&] { return client.get("/recent").body.find(elsewhere_id) != std::string::npos; }));
  auto other = client.request("GET", "/stream/r?heartbeat=0.1", {}, {{"Last-Event-ID", elsewhere_id}});
  FakeSink sink3;
  std::thread producer3([&] { other.stream(sink3); });
  REQUIRE(eventually([&] { return sink3.text().find("is not among") != std::string::npos; }));
  sink3.leave();
  producer3.join();
}

TEST_CASE("streams end when events_demo shuts down") {
  auto bus = ordinaut::make_memory_event_bus();
  auto client = events_demo_client(bus, {Capability::ROUTES, Capability::EVENTS_SUB});
  auto response = client->get("/stream/x?heartbeat=60");
  REQUIRE(response.status == 200);
  FakeSink sink;
  std::atomic<bool> ended{false};
  std::thread producer([&] {
    response.stream(sink);
    ended = true;
  });
  REQUIRE(eventually([&] { return !sink.text().empty(); }));
  client->host().shutdown();
  CHECK(eventually([&] { return ended.load(); }, 3s));  // well before the 60 s heartbeat
  producer.join();
}

namespace {

// A Redis Streams bus on a fresh redis-server, with short waits for tests.
std::shared_ptr<ordinaut::EventBus> redis_bus(const obs_test::RedisServer& redis) {
  ordinaut::RedisBusOptions options;
  options.url = redis.url();
  options.block_timeout = 200ms;
  options.discovery_interval = 100ms;
  options.stats_interval = 100ms;
  auto bus = ordinaut::make_redis_event_bus(options);
  REQUIRE_MESSAGE(bus.ok(), (bus.ok() ? "" : bus.error().message));
  return *bus;
}

}  // namespace

TEST_CASE("on the Redis Streams bus an SSE stream gets every event in publish order with valid JSON") {
  obs_test::RedisServer redis;
  auto bus = redis_bus(redis);
  {
    auto owned = events_demo_client(bus, kAllGrants);
    auto response = owned->get("/stream/redis.order?heartbeat=0.2");
    REQUIRE(response.status == 200);
    FakeSink sink;
    std::thread producer([&] { response.stream(sink); });
    REQUIRE(eventually([&] { return !sink.text().empty(); }));
    std::vector<std::string> ids;
    for (int i = 0; i < 100; ++i) {
      auto r = owned->post("/publish/redis.order", R"({"n":)" + std::to_string(i) + "}");
      REQUIRE(r.status == 200);
      ids.push_back(payload(r.body)["id"].GetString());
    }
    REQUIRE(eventually([&] { return sink.text().find("id: " + ids.back() + "\n") != std::string::npos; }, 15s));
    sink.leave();
    producer.join();
    response = {};
    std::string text = sink.text();
    std::vector<obs_test::SseEvent> events;
    std::vector<std::string> comments;
    obs_test::parse_sse(text, events, comments);
    REQUIRE(events.size() == ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      CHECK(events[i].id == ids[i]);
      CHECK(events[i].event == "events_demo.redis.order");
      auto data = ordinaut::json::parse(events[i].data);
      REQUIRE_MESSAGE(data.ok(), events[i].data);
      CHECK(std::string((*data)["id"].GetString()) == ids[i]);
      CHECK(std::string((*data)["source"].GetString()) == "events_demo");
      CHECK((*data)["payload"]["n"].GetUint64() == i);
    }
    CHECK(bus->subscriber_health("events_demo").Size() == 1);  // the stream's subscription is gone
  }
  bus->shutdown();
}

TEST_CASE("on the Redis Streams bus observability exports the bus, and the listener hears events_demo") {
  obs_test::RedisServer redis;
  auto bus = redis_bus(redis);
  {
    Fixture f(bus);
    // The pattern subscriptions (events_demo's history, the listener) find the
    // new topic within their discovery interval.
    std::string id;
    REQUIRE(eventually([&] {
      auto r = send(*f.host, "POST", "/ext/events_demo/publish/over_redis", R"({"via":"redis"})");
      REQUIRE(r.status == 200);
      if (id.empty()) id = payload(r.body)["id"].GetString();
      return send(*f.host, "GET", "/ext/listener/received").body.find("over_redis") != std::string::npos;
    }, 15s));
    const std::string body = metrics(*f.host);
    CHECK(value_of(body, R"(ordinaut_event_bus_connected{bus="redis"})") == 1);
    CHECK(value_of(body, R"(ordinaut_events_published_total{bus="redis"})") >= 1);
    CHECK(value_of(body, R"(ordinaut_event_bus_reconnects_total{bus="redis"})") >= 0);
    CHECK(value_of(body, R"(ordinaut_event_publish_errors_total{bus="redis"})") == 0);
    CHECK(value_of(body, R"(ordinaut_events_delivered_total{extension="listener"})") >= 0);
    auto lint = obs_test::run_with_input("promtool check metrics", body);
    CHECK_MESSAGE(lint.exit_code == 0, lint.output);
    CHECK_MESSAGE(lint.output.empty(), lint.output);
  }
  bus->shutdown();
}

// ---- issue 13: events_demo budgets and pagination ----------------------------------

namespace {

// Sets an environment variable for one scope (events_demo reads its settings at setup).
class EnvVar {
 public:
  EnvVar(const char* name, const std::string& value) : name_(name) { ::setenv(name, value.c_str(), 1); }
  ~EnvVar() { ::unsetenv(name_); }
  EnvVar(const EnvVar&) = delete;
  EnvVar& operator=(const EnvVar&) = delete;

 private:
  const char* name_;
};

// The "history" check of GET /ext/events_demo/health.
ordinaut::Json history_health(ordinaut::testing::TestClient& client) {
  auto doc = payload(client.get("/health").body);
  return ordinaut::json::copy(doc["checks"]["history"]);
}

}  // namespace

TEST_CASE("events_demo: for a 600-deep body the message and details.offset agree; 200,000 deep is a 400 too") {
  auto bus = ordinaut::make_memory_event_bus();
  auto owned = events_demo_client(bus, kAllGrants);
  for (std::size_t depth : {600u, 200'000u}) {
    CAPTURE(depth);
    auto r = owned->post("/publish/x", std::string(depth, '[') + std::string(depth, ']'));
    CHECK(r.status == 400);
    auto doc = payload(r.body);
    CHECK(doc["details"]["offset"].GetUint64() == 512);
    CHECK(doc["details"]["line"].GetUint64() == 1);
    CHECK(doc["details"]["column"].GetUint64() == 513);
    CHECK(std::string(doc["message"].GetString()) ==
          "request body is not valid JSON: line 1, column 513 (offset 512): nesting deeper than 512 levels");
  }
  bus->shutdown();
}

TEST_CASE("events_demo: the history is bounded by bytes as well as by count") {
  EnvVar bytes("ORDINAUT_EVENTS_DEMO_HISTORY_BYTES", "8192");
  EnvVar count("ORDINAUT_EVENTS_DEMO_HISTORY_EVENTS", "1000");
  auto bus = ordinaut::make_memory_event_bus();
  auto owned = events_demo_client(bus, kAllGrants);
  auto& client = *owned;
  const std::string text(500, 't');
  std::string last_id;
  for (int i = 0; i < 60; ++i) {
    auto r = client.post("/publish/budget", R"({"i":)" + std::to_string(i) + R"(,"text":")" + text + "\"}");
    REQUIRE(r.status == 200);
    last_id = payload(r.body)["id"].GetString();
  }
  REQUIRE(eventually([&] { return client.get("/recent").body.find(last_id) != std::string::npos; }));
  auto h = history_health(client);
  INFO(ordinaut::json::dump(h));
  CHECK(h["capacity_bytes"].GetUint64() == 8192);
  CHECK(h["bytes"].GetUint64() <= 8192);
  CHECK(h["events"].GetUint64() < 20);
  CHECK(h["events"].GetUint64() >= 10);
  // One event larger than the whole budget is streamed live but not kept.
  auto big = client.post("/publish/budget", R"({"text":")" + std::string(9000, 'b') + "\"}");
  REQUIRE(big.status == 200);
  REQUIRE(eventually([&] { return history_health(client)["skipped_too_large"].GetUint64() == 1; }));
  CHECK(client.get("/recent").body.find(last_id) != std::string::npos);
  bus->shutdown();
}

TEST_CASE("events_demo: a malformed history setting is a setup error naming the variable") {
  EnvVar bytes("ORDINAUT_EVENTS_DEMO_HISTORY_BYTES", "lots");
  ordinaut::testing::TestClientOptions options;
  options.grants = kAllGrants;
  options.event_bus = ordinaut::make_memory_event_bus();
  ordinaut::testing::TestClient client(load_module("events_demo"), options);
  CHECK(client.state() == ordinaut::ExtensionState::error);
  options.event_bus->shutdown();
}

TEST_CASE("events_demo: /recent is paginated with limit and before, newest last within a page") {
  auto bus = ordinaut::make_memory_event_bus();
  auto owned = events_demo_client(bus, kAllGrants);
  auto& client = *owned;
  std::vector<std::string> ids;
  for (int i = 0; i < 25; ++i) {
    auto r = client.post("/publish/page", R"({"i":)" + std::to_string(i) + "}");
    REQUIRE(r.status == 200);
    ids.push_back(payload(r.body)["id"].GetString());
  }
  client.post("/publish/elsewhere", "{}");
  REQUIRE(eventually([&] { return client.get("/recent?name=page").body.find(ids.back()) != std::string::npos; }));
  std::vector<std::string> seen;  // newest page first
  std::string before;
  int pages = 0;
  while (true) {
    auto r = client.get("/recent?name=page&limit=10" + (before.empty() ? std::string() : "&before=" + before));
    REQUIRE(r.status == 200);
    auto doc = payload(r.body);
    std::vector<std::string> page;
    for (auto& e : doc["events"].GetArray()) page.emplace_back(e["id"].GetString());
    CHECK(page.size() <= 10);
    seen.insert(seen.begin(), page.begin(), page.end());
    ++pages;
    if (doc["next_before"].IsNull()) break;
    before = doc["next_before"].GetString();
    CHECK(before == page.front());
    REQUIRE(pages < 10);
  }
  CHECK(pages == 3);
  CHECK(seen == ids);
  // Default limit and bad parameters.
  CHECK(payload(client.get("/recent").body)["events"].Size() == 26);
  for (const char* bad : {"limit=0", "limit=1001", "limit=x", "limit=-1", "before=nope"}) {
    CAPTURE(bad);
    auto r = client.get(std::string("/recent?") + bad);
    CHECK(r.status == 400);
  }
  bus->shutdown();
}

// ---- built-in tools (issue 16) ------------------------------------------------

namespace {

ordinaut::Json call_tool(ordinaut::ToolRegistry& tools, const std::string& name, const std::string& args) {
  auto input = payload(args);
  auto r = tools.call(name, input);
  REQUIRE_MESSAGE(r.ok(), name << " failed: " << (r.ok() ? "" : r.error().code + ": " + r.error().message));
  return std::move(r).value();
}

std::string tool_error(ordinaut::ToolRegistry& tools, const std::string& name, const std::string& args) {
  auto input = payload(args);
  auto r = tools.call(name, input);
  REQUIRE_FALSE(r.ok());
  return r.error().code + ": " + r.error().message;
}

}  // namespace

TEST_CASE("events_demo tools: publish returns the id; recent pages like GET /recent") {
  auto bus = ordinaut::make_memory_event_bus();
  auto owned = events_demo_client(bus, {Capability::ROUTES, Capability::EVENTS_PUB, Capability::EVENTS_SUB,
                                        Capability::TOOLS});
  auto& client = *owned;
  auto& tools = client.tools();
  auto publish = tools.get("ext.events_demo.publish");
  REQUIRE(publish);
  CHECK_FALSE(publish->description.empty());
  CHECK(publish->output_schema != nullptr);
  REQUIRE(tools.get("ext.events_demo.recent"));

  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto out = call_tool(tools, "ext.events_demo.publish", R"({"topic":"orders","payload":{"n":)" + std::to_string(i) + "}}");
    CHECK(std::string(out["topic"].GetString()) == "events_demo.orders");
    ids.emplace_back(out["id"].GetString());
  }
  // A full topic is accepted too; any JSON value is a payload.
  CHECK(std::string(call_tool(tools, "ext.events_demo.publish", R"({"topic":"events_demo.other","payload":"text"})")
                        ["topic"].GetString()) == "events_demo.other");
  REQUIRE(eventually([&] { return call_tool(tools, "ext.events_demo.recent", "{}")["events"].Size() == 6; }));

  // Two pages of orders, newest last within a page, the same as the route's.
  auto first = call_tool(tools, "ext.events_demo.recent", R"({"topic":"orders","limit":3})");
  REQUIRE(first["events"].Size() == 3);
  CHECK(std::string(first["events"][2]["id"].GetString()) == ids[4]);
  CHECK(first["events"][2]["payload"]["n"].GetInt() == 4);
  const std::string before = first["next_before"].GetString();
  CHECK(before == ids[2]);
  CHECK(payload(client.get("/recent?name=orders&limit=3").body)["next_before"].GetString() == before);
  auto second = call_tool(tools, "ext.events_demo.recent", R"({"topic":"orders","limit":3,"before":")" + before + "\"}");
  REQUIRE(second["events"].Size() == 2);
  CHECK(std::string(second["events"][0]["id"].GetString()) == ids[0]);
  CHECK(second["next_before"].IsNull());
  CHECK(call_tool(tools, "ext.events_demo.recent", R"({"topic":"*"})")["events"].Size() == 6);

  // Bad input: the schema, then the routes' own checks, each naming the problem.
  CHECK(tool_error(tools, "ext.events_demo.publish", R"({"topic":"orders"})").starts_with("invalid_input"));
  CHECK(tool_error(tools, "ext.events_demo.publish", R"({"topic":"a b","payload":1})").starts_with("invalid_input"));
  CHECK(tool_error(tools, "ext.events_demo.recent", R"({"limit":0})").starts_with("invalid_input"));
  auto bad_before = tool_error(tools, "ext.events_demo.recent", R"({"before":"nope"})");
  CHECK(bad_before.starts_with("bad_request"));
  CHECK(bad_before.find("argument before") != std::string::npos);
  auto bad_topic = tool_error(tools, "ext.events_demo.recent", R"({"topic":"a b"})");
  CHECK(bad_topic.find("argument topic") != std::string::npos);
  bus->shutdown();
}

TEST_CASE("events_demo without TOOLS registers no tools") {
  auto bus = ordinaut::make_memory_event_bus();
  auto owned = events_demo_client(bus, kAllGrants);
  CHECK_FALSE(owned->tools().get("ext.events_demo.publish"));
  bus->shutdown();
}

TEST_CASE("observability snapshot: per-extension requests, errors, latency quantiles and tool calls") {
  Fixture f;
  for (int i = 0; i < 4; ++i) CHECK(send(*f.host, "GET", "/ext/probe/items/1").status == 200);
  CHECK(send(*f.host, "GET", "/ext/probe/fail").status == 500);
  CHECK(send(*f.host, "POST", "/ext/probe/call/echo").status == 200);
  CHECK(send(*f.host, "POST", "/ext/probe/call/fail").status == 500);
  auto& tools = f.host->tools();
  auto info = tools.get("ext.observability.snapshot");
  REQUIRE(info);
  CHECK(info->output_schema != nullptr);  // the registry checks every result against it

  auto all = call_tool(tools, "ext.observability.snapshot", "{}");
  const ordinaut::JsonValue* probe = nullptr;
  for (auto& e : all["extensions"].GetArray()) {
    if (std::string(e["id"].GetString()) == "probe") probe = &e;
  }
  REQUIRE(probe != nullptr);
  CHECK(std::string((*probe)["state"].GetString()) == "active");
  CHECK((*probe)["requests"].GetUint64() == 7);
  CHECK((*probe)["errors"].GetUint64() == 2);
  CHECK((*probe)["latency"]["count"].GetUint64() == 7);
  CHECK((*probe)["latency"]["p50_ms"].IsNumber());
  CHECK((*probe)["latency"]["p99_ms"].GetDouble() >= (*probe)["latency"]["p50_ms"].GetDouble());
  CHECK((*probe)["tool_calls"].GetUint64() == 2);
  CHECK((*probe)["tool_errors"].GetUint64() == 1);
  CHECK_FALSE(probe->HasMember("routes"));
  CHECK(all["process"]["resident_bytes"].GetDouble() > 1e6);
  CHECK(all["tools"].Size() >= 3);

  // One extension, with its routes; an extension without requests has null quantiles.
  auto one = call_tool(tools, "ext.observability.snapshot", R"({"extension":"probe","routes":true})");
  REQUIRE(one["extensions"].Size() == 1);
  bool items = false;
  for (auto& r : one["extensions"][0]["routes"].GetArray()) {
    if (std::string(r["route"].GetString()) == "/items/{id}") {
      items = true;
      CHECK(r["requests"].GetUint64() == 4);
      CHECK(r["errors"].GetUint64() == 0);
    }
  }
  CHECK(items);
  for (auto& t : one["tools"].GetArray()) CHECK(std::string(t["owner"].GetString()) == "probe");
  auto quiet = call_tool(tools, "ext.observability.snapshot", R"({"extension":"worker"})");
  CHECK(quiet["extensions"][0]["latency"]["p50_ms"].IsNull());
  CHECK(tool_error(tools, "ext.observability.snapshot", R"({"extension":"nope"})").find("nope") != std::string::npos);
  CHECK(tool_error(tools, "ext.observability.snapshot", R"({"routes":"yes"})").starts_with("invalid_input"));
}

TEST_CASE("observability diagnose prompt and snapshot resource: the metrics embedded, ids completed") {
  Fixture f;
  CHECK(send(*f.host, "GET", "/ext/probe/items/1").status == 200);
  auto got = f.host->prompts().get("ext.observability.diagnose", {{"extension", "probe"}});
  REQUIRE_MESSAGE(got.ok(), got.error().message);
  REQUIRE(got->messages.size() == 2);
  CHECK(got->messages[0].content.text.find("extension 'probe'") != std::string::npos);
  const auto& embedded = got->messages[1].content;
  CHECK(embedded.kind == ordinaut::ContentBlock::Kind::resource);
  CHECK(embedded.resource.uri == "ext://observability/snapshot");
  auto metrics = ordinaut::json::parse(embedded.resource.text);
  REQUIRE(metrics.ok());
  REQUIRE((*metrics)["extensions"].Size() == 1);
  CHECK(std::string((*metrics)["extensions"][0]["id"].GetString()) == "probe");
  CHECK((*metrics)["extensions"][0]["requests"].GetUint64() == 1);

  auto unknown = f.host->prompts().get("ext.observability.diagnose", {{"extension", "nope"}});
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().code == "invalid_arguments");
  auto ids = f.host->prompts().complete("ext.observability.diagnose", "extension", "pro", {});
  REQUIRE(ids.ok());
  CHECK(ids->values == std::vector<std::string>{"probe"});

  auto read = f.host->resources().read("ext://observability/snapshot");
  REQUIRE_MESSAGE(read.ok(), read.error().message);
  CHECK((*read)[0].mime_type == "application/json");
  auto all = ordinaut::json::parse((*read)[0].text);
  REQUIRE(all.ok());
  CHECK((*all)["extensions"].Size() >= 2);
}
