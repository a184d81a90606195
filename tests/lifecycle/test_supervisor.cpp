// The background-task supervisor, through a real ExtensionHost: restarts with
// growing backoff, stop tokens, limits, failure, abandonment, health.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "lifecycle_support.hpp"

using namespace lifecycle_test;
using test_support::str;
using Clock = std::chrono::steady_clock;

namespace {

// Starts a host with one eager scripted extension whose setup() hands its
// BackgroundTasks handle out through `tasks`.
struct TaskHost {
  test_support::LogCapture logs;
  std::shared_ptr<Script> script = std::make_shared<Script>();
  ordinaut::BackgroundTasks* tasks = nullptr;
  std::unique_ptr<ordinaut::ExtensionHost> host;

  explicit TaskHost(std::function<void(ordinaut::BackgroundTasks&)> start = {},
                    std::chrono::milliseconds timeout = 5000ms, std::size_t max_tasks = 32) {
    script->id = "worker";
    script->setup = [this, start](ordinaut::SetupContext& context, ordinaut::Router&) {
      tasks = &context.background();
      if (start) start(*tasks);
    };
    auto o = options(logs, timeout);
    o.max_tasks_per_extension = max_tasks;
    host = std::make_unique<ordinaut::ExtensionHost>(std::move(o));
    add(*host, script, true);
    REQUIRE(host->start().ok());
    REQUIRE(state_of(*host, "worker") == "active");
    REQUIRE(tasks != nullptr);
  }

  ordinaut::TaskStatus task(const std::string& name) const {
    for (auto& t : tasks->list()) {
      if (t.name == name) return t;
    }
    FAIL("no task " << name);
    return {};
  }
};

}  // namespace

TEST_CASE("a crashing periodic task restarts with growing delays") {
  std::mutex mutex;
  std::vector<Clock::time_point> runs;
  ordinaut::TaskOptions o;
  o.initial_backoff = 100ms;
  o.max_backoff = 800ms;
  o.jitter = 0.2;
  TaskHost h([&](ordinaut::BackgroundTasks& tasks) {
    auto r = tasks.start_periodic(
        "flaky", 5ms,
        [&](std::stop_token) {
          std::lock_guard lock(mutex);
          runs.push_back(Clock::now());
          throw std::runtime_error("boom " + std::to_string(runs.size()));
        },
        o);
    REQUIRE(r.ok());
  });

  // While it backs off, the failure is visible in list(), health and status.
  REQUIRE(eventually([&] { return h.task("flaky").state == ordinaut::TaskState::backing_off; }));
  auto health = send(*h.host, "GET", "/ext/worker/health");
  CHECK(health.status == 200);
  auto doc = test_support::parse_json(health.body);
  CHECK(str(doc["status"]) == "degraded");
  REQUIRE(doc["checks"].HasMember("task:flaky"));
  CHECK(str(doc["checks"]["task:flaky"]["status"]) == "backing_off");
  CHECK(str(doc["checks"]["task:flaky"]["last_error"]).starts_with("boom"));
  auto st = extension_status(*h.host, "worker");
  REQUIRE(st["tasks"].IsArray());
  REQUIRE(st["tasks"].Size() == 1);
  CHECK(str(st["tasks"][0]["name"]) == "flaky");
  CHECK(str(st["tasks"][0]["kind"]) == "periodic");
  CHECK(st["tasks"][0]["interval_ms"].GetInt64() == 5);

  REQUIRE(eventually([&] {
    std::lock_guard lock(mutex);
    return runs.size() >= 7;
  }, 10s));
  REQUIRE(h.tasks->stop("flaky").ok());
  std::vector<Clock::time_point> at;
  {
    std::lock_guard lock(mutex);
    at = runs;
  }
  // Pauses 100, 200, 400, 800, 800, 800 ms, each shortened by up to 20 %.
  std::vector<std::int64_t> gaps;
  for (std::size_t i = 1; i < 7; ++i) gaps.push_back(ms_between(at[i - 1], at[i]));
  INFO("gaps (ms): " << gaps[0] << " " << gaps[1] << " " << gaps[2] << " " << gaps[3] << " " << gaps[4] << " "
                     << gaps[5]);
  for (std::size_t i = 0; i < gaps.size(); ++i) {
    const double pause = std::min(100.0 * std::pow(2.0, static_cast<double>(i)), 800.0);
    CHECK(static_cast<double>(gaps[i]) >= pause * 0.8 - 1);   // never sooner than the jittered backoff
    CHECK(static_cast<double>(gaps[i]) <= pause + 1000);      // and it did resume
  }
  for (std::size_t i = 1; i < 4; ++i) CHECK(gaps[i] > gaps[i - 1]);  // growing until the cap
  for (std::size_t i = 4; i < gaps.size(); ++i) CHECK(static_cast<double>(gaps[i]) >= 0.8 * 800 - 1);  // capped

  auto t = h.task("flaky");
  CHECK(t.state == ordinaut::TaskState::stopped);
  CHECK(t.restarts >= 6);
  CHECK(t.failures >= 7);
  CHECK(t.last_success_ms == 0);
  CHECK(t.last_error.starts_with("boom"));
  CHECK(h.logs.count("task_backing_off", "worker") >= 6);
}

TEST_CASE("a clean periodic run resets the backoff and records last success") {
  std::atomic<int> calls{0};
  ordinaut::TaskOptions o;
  o.initial_backoff = 20ms;
  TaskHost h([&](ordinaut::BackgroundTasks& tasks) {
    REQUIRE(tasks.start_periodic("tick", 10ms, [&](std::stop_token) {
      if (++calls == 2) throw std::runtime_error("second run fails");
    }, o).ok());
  });
  REQUIRE(eventually([&] { return calls.load() >= 5; }));
  auto t = h.task("tick");
  CHECK(t.restarts == 1);
  CHECK(t.failures == 1);
  CHECK(t.last_error == "second run fails");
  CHECK(t.last_success_ms > 0);
  CHECK(t.state != ordinaut::TaskState::failed);
}

TEST_CASE("after max_restarts failures in a row a task is failed and never run again") {
  std::atomic<int> calls{0};
  ordinaut::TaskOptions o;
  o.initial_backoff = 5ms;
  o.max_restarts = 2;
  TaskHost h([&](ordinaut::BackgroundTasks& tasks) {
    REQUIRE(tasks.start("doomed", [&](std::stop_token) {
      ++calls;
      throw std::runtime_error("cannot connect");
    }, o).ok());
  });
  REQUIRE(eventually([&] { return h.task("doomed").state == ordinaut::TaskState::failed; }));
  std::this_thread::sleep_for(100ms);
  CHECK(calls.load() == 3);  // the first run and two restarts
  auto t = h.task("doomed");
  CHECK(t.restarts == 2);
  CHECK(t.runs == 3);
  CHECK(t.last_error == "cannot connect");
  CHECK(h.logs.count("task_failed", "worker") == 1);

  auto doc = test_support::parse_json(send(*h.host, "GET", "/ext/worker/health").body);
  CHECK(str(doc["status"]) == "degraded");
  CHECK(str(doc["checks"]["task:doomed"]["status"]) == "failed");
  CHECK(str(doc["checks"]["task:doomed"]["state"]) == "failed");
}

TEST_CASE("a task honours its stop token: stop() returns once it has returned") {
  std::atomic<bool> saw_stop{false};
  auto body = [&](std::stop_token stop) {
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    cv.wait(lock, stop, [] { return false; });
    saw_stop = true;
  };
  TaskHost h([&](ordinaut::BackgroundTasks& tasks) { REQUIRE(tasks.start("waiter", body).ok()); });
  CHECK(h.task("waiter").state == ordinaut::TaskState::running);
  auto health = test_support::parse_json(send(*h.host, "GET", "/ext/worker/health").body);
  CHECK(str(health["status"]) == "ok");
  CHECK(str(health["checks"]["task:waiter"]["status"]) == "ok");

  const auto began = Clock::now();
  REQUIRE(h.tasks->stop("waiter").ok());
  CHECK(ms_between(began, Clock::now()) < 1000);  // far below the 5 s timeout: it was not abandoned
  CHECK(saw_stop.load());
  auto t = h.task("waiter");
  CHECK(t.state == ordinaut::TaskState::stopped);
  CHECK_FALSE(t.abandoned);

  // Unknown names are refused; the name of an ended task can be used again.
  auto unknown = h.tasks->stop("nope");
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().code == "unknown_task");
  saw_stop = false;
  REQUIRE(h.tasks->start("waiter", body).ok());
  CHECK(h.task("waiter").state == ordinaut::TaskState::running);
  CHECK(h.tasks->list().size() == 1);
  h.host->shutdown();  // stops it through the same token
  CHECK(saw_stop.load());
}

TEST_CASE("a task that ignores its stop token is abandoned after the timeout") {
  Latch latch;
  std::atomic<bool> returned{false};
  TaskHost h(
      [&](ordinaut::BackgroundTasks& tasks) {
        REQUIRE(tasks.start("stubborn", [&](std::stop_token) {
          latch.wait();
          returned = true;
        }).ok());
      },
      200ms);
  const auto began = Clock::now();
  REQUIRE(h.tasks->stop("stubborn").ok());
  const auto waited = ms_between(began, Clock::now());
  CHECK(waited >= 190);
  CHECK(waited < 2000);
  auto t = h.task("stubborn");
  CHECK(t.abandoned);
  CHECK(h.logs.count("task_abandoned", "worker") == 1);
  auto health = test_support::parse_json(send(*h.host, "GET", "/ext/worker/health").body);
  CHECK(str(health["status"]) == "degraded");
  CHECK(str(health["checks"]["task:stubborn"]["status"]) == "abandoned");
  CHECK(health["checks"]["task:stubborn"]["abandoned"].GetBool());

  latch.open();
  REQUIRE(eventually([&] { return h.task("stubborn").state == ordinaut::TaskState::stopped; }));
  CHECK(returned.load());
}

TEST_CASE("limits and validation: task_limit, duplicate_task, invalid_task") {
  auto wait_stop = [](std::stop_token stop) {
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    cv.wait(lock, stop, [] { return false; });
  };
  TaskHost h({}, 5000ms, 2);
  REQUIRE(h.tasks->start("a", wait_stop).ok());
  REQUIRE(h.tasks->start_periodic("b", 50ms, [](std::stop_token) {}).ok());

  auto limit = h.tasks->start("c", wait_stop);
  REQUIRE_FALSE(limit.ok());
  CHECK(limit.error().code == "task_limit");
  CHECK(limit.error().message.find("limit is 2") != std::string::npos);
  CHECK(h.logs.count("task_limit", "worker") == 1);

  auto dup = h.tasks->start("a", wait_stop);
  REQUIRE_FALSE(dup.ok());
  CHECK(dup.error().code == "duplicate_task");

  for (const char* bad : {"", "has space", "slash/name"}) {
    auto r = h.tasks->start(bad, wait_stop);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "invalid_task");
  }
  auto zero = h.tasks->start_periodic("z", 0ms, [](std::stop_token) {});
  REQUIRE_FALSE(zero.ok());
  CHECK(zero.error().code == "invalid_task");
  CHECK(zero.error().message.find("interval") != std::string::npos);
  ordinaut::TaskOptions inverted;
  inverted.initial_backoff = 100ms;
  inverted.max_backoff = 10ms;
  auto bad_options = h.tasks->start("x", wait_stop, inverted);
  REQUIRE_FALSE(bad_options.ok());
  CHECK(bad_options.error().code == "invalid_task");
  auto no_function = h.tasks->start("x", nullptr);
  REQUIRE_FALSE(no_function.ok());
  CHECK(no_function.error().code == "invalid_task");

  // Ended tasks no longer count against the limit.
  REQUIRE(h.tasks->stop("a").ok());
  REQUIRE(h.tasks->start("c", wait_stop).ok());
  CHECK(h.tasks->list().size() == 2);  // the ended "a" made room for "c"
}

TEST_CASE("a task can stop itself, and a long-running task that returns ends as stopped") {
  std::atomic<bool> stopped_itself{false};
  TaskHost h([&](ordinaut::BackgroundTasks& tasks) {
    REQUIRE(tasks.start("once", [](std::stop_token) {}).ok());
    REQUIRE(tasks.start_periodic("self", 5ms, [&tasks, &stopped_itself](std::stop_token) {
      stopped_itself = tasks.stop("self").ok();  // must not wait for itself
    }).ok());
  });
  REQUIRE(eventually([&] { return h.task("once").state == ordinaut::TaskState::stopped; }));
  CHECK(h.task("once").last_success_ms > 0);
  CHECK(h.task("once").runs == 1);
  REQUIRE(eventually([&] { return h.task("self").state == ordinaut::TaskState::stopped; }));
  CHECK(stopped_itself.load());
  CHECK(h.task("self").runs == 1);
  CHECK_FALSE(h.task("self").abandoned);
}

TEST_CASE("without BACKGROUND_TASKS background() is refused and audited") {
  test_support::LogCapture logs;
  auto script = std::make_shared<Script>();
  script->id = "nobg";
  script->setup = [](ordinaut::SetupContext& context, ordinaut::Router&) { (void)context.background(); };
  ordinaut::ExtensionHost host(options(logs));
  host.add_linked(script->id, [script] { return std::make_unique<Scripted>(script); },
                  ordinaut::CapabilitySet{Capability::ROUTES}, true);
  REQUIRE(host.start().ok());
  auto st = extension_status(host, "nobg");
  CHECK(str(st["state"]) == "error");
  CHECK(str(st["error_phase"]) == "setup");
  CHECK(str(st["last_error"]).find("BACKGROUND_TASKS") != std::string::npos);
  CHECK(logs.count("capability_denied", "nobg") >= 1);
}

TEST_CASE("tasks started by a setup() that then fails are stopped") {
  test_support::LogCapture logs;
  auto script = std::make_shared<Script>();
  std::atomic<bool> task_running{false}, task_stopped{false};
  script->id = "halfway";
  script->setup = [&](ordinaut::SetupContext& context, ordinaut::Router&) {
    REQUIRE(context.background().start("early", [&](std::stop_token stop) {
      task_running = true;
      while (!stop.stop_requested()) std::this_thread::sleep_for(1ms);
      task_stopped = true;
    }).ok());
    throw std::runtime_error("configuration missing");
  };
  ordinaut::ExtensionHost host(options(logs));
  add(host, script, true);
  REQUIRE(host.start().ok());
  CHECK(task_running.load());  // entered once even though stop came at once
  CHECK(task_stopped.load());
  CHECK(state_of(host, "halfway") == "error");
  auto st = extension_status(host, "halfway");
  CHECK(str(st["last_error"]) == "setup() threw: configuration missing");
}
