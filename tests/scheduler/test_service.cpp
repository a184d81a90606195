// Service: the scheduler's operations and dispatcher on a real SQLite store and
// a real tool registry, with the clock driven by the test (tick(now)). Runs
// execute on the service's worker threads; the tests wait for their states
// with a generous deadline.
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "service.hpp"
#include "support.hpp"

using namespace ordinaut;
using namespace ordinaut::scheduler;

namespace {

constexpr std::int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
constexpr std::int64_t kMinute = 60'000;

bool eventually(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return condition();
}

Json parse(std::string_view text) {
  auto doc = json::parse(text);
  REQUIRE_MESSAGE(doc.ok(), text);
  return std::move(doc).value();
}

std::string str(const JsonValue& v, const char* key) {
  auto s = json::get_string(v, key);
  return s ? std::string(*s) : std::string();
}

// A registry with the tools the pipelines call, and what they saw.
struct Tools {
  ToolRegistry registry;
  std::mutex mutex;
  std::vector<std::string> echoed;  // json of each echo input
  std::atomic<int> failures{0};
  std::atomic<int> blocking_started{0};
  std::atomic<int> block_calls_left{1000};

  Tools() {
    REQUIRE(registry
                .add({.name = "test.echo",
                      .description = "returns its input",
                      .input_schema = R"({"type":"object","properties":{"text":{"type":"string"}},"required":["text"]})",
                      .function = [this](const JsonValue& in, ToolContext&) {
                        std::lock_guard lock(mutex);
                        echoed.push_back(json::dump(in));
                        return json::copy(in);
                      }})
                .ok());
    REQUIRE(registry
                .add({.name = "test.fail",
                      .description = "always fails",
                      .function = [this](const JsonValue&, ToolContext&) -> Json {
                        ++failures;
                        throw ToolError("boom", "it failed on purpose");
                      }})
                .ok());
    REQUIRE(registry
                .add({.name = "test.block",
                      .description = "waits until cancelled (the first block_calls_left calls)",
                      .function = [this](const JsonValue&, ToolContext& ctx) {
                        if (block_calls_left.fetch_sub(1) > 0) {
                          ++blocking_started;
                          const auto guard = std::chrono::steady_clock::now() + std::chrono::seconds(120);
                          while (!ctx.cancelled() && std::chrono::steady_clock::now() < guard) {
                            std::this_thread::sleep_for(std::chrono::milliseconds(2));
                          }
                        }
                        return parse(R"({"done":true})");
                      }})
                .ok());
  }
  std::vector<std::string> echoes() {
    std::lock_guard lock(mutex);
    return echoed;
  }
};

struct Fixture {
  test_support::TempDir dir;
  Tools tools;
  std::atomic<std::int64_t> now{kT0};
  std::mutex changes_mutex;
  std::vector<std::string> topics;

  // `tweak` changes the options last (e.g. the real clock: now_ms = {}).
  std::unique_ptr<Service> make(std::string owner = "server-a", std::int64_t lease_ms = 30'000,
                                const std::function<void(ServiceOptions&)>& tweak = {}) {
    auto store = Store::open("sqlite:" + (dir.path() / "scheduler.db").string());
    REQUIRE_MESSAGE(store.ok(), (store.ok() ? "" : store.error().message));
    ServiceOptions options;
    options.owner = std::move(owner);
    options.lease_ms = lease_ms;
    options.now_ms = [this] { return now.load(); };
    if (tweak) tweak(options);
    auto service = std::make_unique<Service>(std::move(*store), ToolView(tools.registry), options);
    service->on_change([this](const Change& c) {
      std::lock_guard lock(changes_mutex);
      topics.push_back(c.topic);
    });
    return service;
  }
  std::size_t count(std::string_view topic) {
    std::lock_guard lock(changes_mutex);
    return static_cast<std::size_t>(std::count(topics.begin(), topics.end(), topic));
  }
};

Json task_of(Service& s, const std::string& id) {
  auto t = s.get_task(id);
  REQUIRE(t.ok());
  return std::move(t).value();
}

Json run_of(Service& s, const std::string& id) {
  auto r = s.get_run(id);
  REQUIRE(r.ok());
  return std::move(r).value();
}

std::vector<Json> runs_of(Service& s, const std::string& task_id) {
  auto page = s.list_runs(parse(fmt::format(R"({{"task_id":"{}"}})", task_id)));
  REQUIRE(page.ok());
  std::vector<Json> out;
  for (auto& r : (*page)["runs"].GetArray()) out.push_back(json::copy(r));
  return out;
}

bool has_status(Service& s, const std::string& run_id, std::string_view status) {
  auto r = s.get_run(run_id);
  return r.ok() && str(*r, "status") == status;
}

// A manual task calling test.block, run now and started by s.tick(): the
// task's and the run's ids, once the tool blocks (until cancelled).
struct BlockingRun {
  std::string task_id, run_id;
};
BlockingRun start_blocking_run(Fixture& f, Service& s) {
  auto task = s.create_task(parse(R"({"title":"long","schedule_kind":"manual","payload":{"pipeline":[{"uses":"test.block"}]}})"));
  REQUIRE(task.ok());
  BlockingRun b{str(*task, "id"), {}};
  auto run = s.run_now(parse(fmt::format(R"({{"id":"{}"}})", b.task_id)));
  REQUIRE(run.ok());
  b.run_id = str(*run, "id");
  const int before = f.tools.blocking_started.load();
  CHECK(s.tick(f.now) == 1);
  REQUIRE(eventually([&] { return f.tools.blocking_started.load() == before + 1; }));
  return b;
}

}  // namespace

TEST_CASE("create_task refuses bad input with a pointer, and stores nothing") {
  Fixture f;
  auto s = f.make();
  struct Case {
    const char* input;
    const char* pointer;
  };
  const Case cases[] = {
      {R"({"title":"t","schedule_kind":"cron","schedule_expr":"61 * * * *"})", "/schedule_expr"},
      {R"({"title":"t","schedule_kind":"rrule","schedule_expr":"FREQ=SOMETIMES"})", "/schedule_expr"},
      {R"({"title":"t","schedule_kind":"cron","schedule_expr":"0 9 * * *","timezone":"Mars/Olympus"})", "/timezone"},
      {R"({"title":"t","schedule_kind":"manual","payload":{"pipeline":[{"uses":"test.nope"}]}})", "/payload/pipeline/0/uses"},
      {R"({"title":"t","schedule_kind":"manual","payload":{"pipeline":[{"uses":"test.echo","with":{"text":5}}]}})",
       "/payload/pipeline/0/with"},
      {R"({"title":"t","schedule_kind":"manual","payload":{"params":{},"pipeline":[{"uses":"test.echo","with":{"text":"${params.missing}"}}]}})",
       "/payload/pipeline/0/with"},
      {R"({"title":"t","schedule_kind":"once","schedule_expr":"2020-01-01T00:00:00Z"})", "/schedule_expr"},
      {R"({"title":"t","schedule_kind":"weekly"})", "/schedule_kind"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.input);
    auto r = s->create_task(parse(c.input));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().pointer.starts_with(c.pointer));
    CHECK_FALSE(r.error().message.empty());
  }
  auto page = s->list_tasks(parse("{}"));
  REQUIRE(page.ok());
  CHECK((*page)["tasks"].Size() == 0);
  CHECK(f.count("task.created") == 0);
}

TEST_CASE("a cron task runs its pipeline at each occurrence, through the registry") {
  Fixture f;
  f.now = kT0 + 30'000;
  auto s = f.make();
  auto task = s->create_task(parse(R"({"title":"every 5","schedule_kind":"cron","schedule_expr":"*/5 * * * *",
      "payload":{"params":{"who":"world"},"pipeline":[
        {"id":"greet","uses":"test.echo","with":{"text":"hello ${params.who}"},"save_as":"g"},
        {"id":"again","uses":"test.echo","with":{"text":"${steps.g.text}!"}}]}})"));
  REQUIRE_MESSAGE(task.ok(), (task.ok() ? "" : task.error().message));
  const std::string id = str(*task, "id");
  CHECK(str(*task, "next_due_at") == "2026-01-01T00:05:00.000Z");
  CHECK(f.count("task.created") == 1);

  CHECK(s->tick(kT0 + 5 * kMinute - 1) == 0);
  CHECK(s->tick(kT0 + 5 * kMinute) == 1);
  REQUIRE(eventually([&] {
    auto runs = runs_of(*s, id);
    return runs.size() == 1 && str(runs[0], "status") == "succeeded";
  }));
  CHECK(f.tools.echoes() == std::vector<std::string>{R"({"text":"hello world"})", R"({"text":"hello world!"})"});
  auto all = runs_of(*s, id);
  const Json& run = all[0];
  CHECK(str(run, "scheduled_for") == "2026-01-01T00:05:00.000Z");
  CHECK(str(run, "trigger") == "schedule");
  REQUIRE(run["steps"].Size() == 2);
  CHECK(str(run["steps"][0], "status") == "succeeded");
  CHECK(str(task_of(*s, id), "next_due_at") == "2026-01-01T00:10:00.000Z");
  // Nothing more until the next occurrence.
  CHECK(s->tick(kT0 + 9 * kMinute) == 0);
  CHECK(s->tick(kT0 + 10 * kMinute) == 1);
  REQUIRE(eventually([&] { return runs_of(*s, id).size() == 2 && s->active_runs() == 0; }));
  CHECK(f.count("task.run.started") == 2);
  CHECK(eventually([&] { return f.count("task.run.succeeded") == 2; }));
}

TEST_CASE("missed occurrences follow the catch-up policy") {
  Fixture f;
  auto s = f.make();
  auto skip = s->create_task(parse(R"({"title":"skip","schedule_kind":"cron","schedule_expr":"*/5 * * * *",
      "payload":{"pipeline":[{"uses":"test.echo","with":{"text":"skip"}}]}})"));
  auto once = s->create_task(parse(R"({"title":"once","schedule_kind":"cron","schedule_expr":"*/5 * * * *","catch_up":"run_once",
      "payload":{"pipeline":[{"uses":"test.echo","with":{"text":"caught up"}}]}})"));
  REQUIRE(skip.ok());
  REQUIRE(once.ok());
  // The server was down for an hour: 00:05 ... 01:00 passed unclaimed; now is 01:02.
  CHECK(s->tick(kT0 + 62 * kMinute) == 1);
  REQUIRE(eventually([&] { return s->active_runs() == 0; }));
  auto skipped = runs_of(*s, str(*skip, "id"));
  REQUIRE(skipped.size() == 1);
  CHECK(str(skipped[0], "status") == "skipped");
  CHECK(str(skipped[0]["error"], "code") == "missed");
  CHECK(str(skipped[0]["error"], "message").find("12 occurrence(s)") != std::string::npos);
  auto caught = runs_of(*s, str(*once, "id"));
  REQUIRE(caught.size() == 1);
  CHECK(eventually([&] { return has_status(*s, str(caught[0], "id"), "succeeded"); }));
  CHECK(str(caught[0], "trigger") == "catch_up");
  CHECK(str(caught[0], "scheduled_for") == "2026-01-01T01:00:00.000Z");
  CHECK(f.tools.echoes() == std::vector<std::string>{R"({"text":"caught up"})"});
  for (const std::string& id : {str(*skip, "id"), str(*once, "id")}) {
    CHECK(str(task_of(*s, id), "next_due_at") == "2026-01-01T01:05:00.000Z");
  }
}

TEST_CASE("snooze skips occurrences; pause stops them; resume starts from now") {
  Fixture f;
  auto s = f.make();
  auto task = s->create_task(parse(R"({"title":"t","schedule_kind":"cron","schedule_expr":"* * * * *",
      "payload":{"pipeline":[{"uses":"test.echo","with":{"text":"tick"}}]}})"));
  REQUIRE(task.ok());
  const std::string id = str(*task, "id");
  auto snoozed = s->snooze_task(parse(fmt::format(R"({{"id":"{}","skip":2}})", id)));
  REQUIRE(snoozed.ok());
  CHECK((*snoozed)["skip_count"].GetInt64() == 2);
  CHECK(s->tick(kT0 + 1 * kMinute) == 0);
  CHECK(s->tick(kT0 + 2 * kMinute) == 0);
  CHECK(s->tick(kT0 + 3 * kMinute) == 1);
  REQUIRE(eventually([&] { return s->active_runs() == 0; }));
  auto runs = runs_of(*s, id);  // newest first
  REQUIRE(runs.size() == 3);
  CHECK(str(runs[2], "status") == "skipped");
  CHECK(str(runs[1], "status") == "skipped");
  CHECK(str(runs[0], "status") == "succeeded");
  CHECK(f.count("task.run.skipped") == 2);

  REQUIRE(s->pause_task(id).ok());
  CHECK(s->tick(kT0 + 4 * kMinute) == 0);
  CHECK(s->tick(kT0 + 9 * kMinute) == 0);
  f.now = kT0 + 10 * kMinute + 30'000;
  auto resumed = s->resume_task(id);
  REQUIRE(resumed.ok());
  CHECK(str(*resumed, "next_due_at") == "2026-01-01T00:11:00.000Z");
  CHECK(runs_of(*s, id).size() == 3);  // nothing ran or was recorded while paused

  auto bad = s->snooze_task(parse(fmt::format(R"({{"id":"{}","until":"tomorrow"}})", id)));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().pointer == "/until");
}

TEST_CASE("run_now with params; dedupe window returns the same run") {
  Fixture f;
  auto s = f.make();
  auto task = s->create_task(parse(R"({"title":"m","schedule_kind":"manual","dedupe_key":"k","dedupe_window_seconds":60,
      "payload":{"params":{"x":"default"},"pipeline":[{"uses":"test.echo","with":{"text":"${params.x}"}}]}})"));
  REQUIRE(task.ok());
  const std::string id = str(*task, "id");
  CHECK((*task)["next_due_at"].IsNull());
  auto first = s->run_now(parse(fmt::format(R"({{"id":"{}","params":{{"x":"override"}}}})", id)));
  REQUIRE(first.ok());
  CHECK(str(*first, "status") == "queued");
  auto second = s->run_now(parse(fmt::format(R"({{"id":"{}"}})", id)));
  REQUIRE(second.ok());
  CHECK(str(*second, "id") == str(*first, "id"));
  CHECK(s->tick(f.now) == 1);
  REQUIRE(eventually([&] { return has_status(*s, str(*first, "id"), "succeeded"); }));
  CHECK(f.tools.echoes() == std::vector<std::string>{R"({"text":"override"})"});
  // After the window, a new run.
  f.now += 61'000;
  auto third = s->run_now(parse(fmt::format(R"({{"id":"{}"}})", id)));
  REQUIRE(third.ok());
  CHECK(str(*third, "id") != str(*first, "id"));
  auto missing = s->run_now(parse(R"({"id":"tsk_nope"})"));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == "not_found");
}

TEST_CASE("an event task runs on a matching event, once per event") {
  Fixture f;
  auto s = f.make();
  auto task = s->create_task(parse(R"({"title":"on order","schedule_kind":"event","schedule_expr":"events_demo.order.*",
      "payload":{"pipeline":[{"uses":"test.echo","with":{"text":"order ${event.payload.n} on ${event.topic}"}}]}})"));
  REQUIRE_MESSAGE(task.ok(), (task.ok() ? "" : task.error().message));
  CHECK(s->on_event("events_demo.invoice.created", "1-0", f.now, parse(R"({"n":1})")) == 0);
  CHECK(s->on_event("events_demo.order.created", "2-0", f.now, parse(R"({"n":2})")) == 1);
  CHECK(s->on_event("events_demo.order.created", "2-0", f.now, parse(R"({"n":2})")) == 0);  // the same event again
  CHECK(s->tick(f.now) == 1);
  REQUIRE(eventually([&] { return s->active_runs() == 0 && f.tools.echoes().size() == 1; }));
  CHECK(f.tools.echoes()[0] == R"({"text":"order 2 on events_demo.order.created"})");
  auto runs = runs_of(*s, str(*task, "id"));
  REQUIRE(runs.size() == 1);
  CHECK(str(runs[0], "trigger") == "event");
  CHECK(str(runs[0]["event"], "id") == "2-0");
}

TEST_CASE("a failing step is retried, then the run fails naming the step") {
  Fixture f;
  auto s = f.make();
  auto task = s->create_task(parse(R"({"title":"f","schedule_kind":"manual","max_retries":2,"backoff_strategy":"none",
      "payload":{"pipeline":[{"id":"ok","uses":"test.echo","with":{"text":"a"}},{"id":"bad","uses":"test.fail"}]}})"));
  REQUIRE(task.ok());
  auto run = s->run_now(parse(fmt::format(R"({{"id":"{}"}})", str(*task, "id"))));
  REQUIRE(run.ok());
  s->tick(f.now);
  const std::string run_id = str(*run, "id");
  REQUIRE(eventually([&] { return has_status(*s, run_id, "failed"); }));
  auto done = run_of(*s, run_id);
  CHECK(f.tools.failures.load() == 3);
  CHECK(str(done["error"], "step") == "bad");
  CHECK(str(done["error"], "code") == "boom");
  REQUIRE(done["steps"].Size() == 2);
  CHECK(done["steps"][1]["attempts"].GetInt() == 3);
  CHECK(eventually([&] { return f.count("task.run.failed") == 1; }));
}

TEST_CASE("cancel_run cancels a running run through the tool's context") {
  Fixture f;
  auto s = f.make();
  const auto [task_id, run_id] = start_blocking_run(f, *s);
  CHECK(str(run_of(*s, run_id), "status") == "running");
  auto cancelled = s->cancel_run(run_id);
  REQUIRE(cancelled.ok());
  CHECK(eventually([&] { return has_status(*s, run_id, "cancelled"); }));
  // Cancelling a finished run changes nothing.
  auto again = s->cancel_run(run_id);
  REQUIRE(again.ok());
  CHECK(str(*again, "status") == "cancelled");
  // A queued run is cancelled before it starts.
  auto queued = s->run_now(parse(fmt::format(R"({{"id":"{}"}})", task_id)));
  REQUIRE(queued.ok());
  auto q = s->cancel_run(str(*queued, "id"));
  REQUIRE(q.ok());
  CHECK(str(*q, "status") == "cancelled");
  CHECK(s->tick(f.now) == 0);
}

TEST_CASE("a run whose server stopped renewing its lease is taken over, and the old server cannot write") {
  Fixture f;
  f.tools.block_calls_left = 1;  // the first execution hangs, the takeover's returns
  auto a = f.make("server-a", 10'000);
  auto b = f.make("server-b", 10'000);
  const std::string run_id = start_blocking_run(f, *a).run_id;
  // Server B, 11 s later, sees an expired lease (A never ticked to renew it).
  CHECK(b->tick(f.now + 11'000) == 1);
  REQUIRE(eventually([&] { return has_status(*b, run_id, "succeeded"); }));
  CHECK(run_of(*b, run_id)["attempt"].GetInt() == 2);
  // A learns at its next tick that the lease is gone; its run is cancelled
  // and what it writes is refused: the run stays succeeded.
  a->tick(f.now + 12'000);
  REQUIRE(eventually([&] { return a->active_runs() == 0; }));
  CHECK(str(run_of(*a, run_id), "status") == "succeeded");
}

TEST_CASE("update and delete") {
  Fixture f;
  auto s = f.make();
  auto task = s->create_task(parse(R"({"title":"t","schedule_kind":"cron","schedule_expr":"0 9 * * *","timezone":"Europe/Bucharest"})"));
  REQUIRE(task.ok());
  const std::string id = str(*task, "id");
  CHECK(str(*task, "next_due_at") == "2026-01-01T07:00:00.000Z");  // 09:00 in Bucharest (UTC+2)
  auto updated = s->update_task(parse(fmt::format(R"({{"id":"{}","schedule_expr":"30 9 * * *","revision":1}})", id)));
  REQUIRE(updated.ok());
  CHECK(str(*updated, "next_due_at") == "2026-01-01T07:30:00.000Z");
  CHECK((*updated)["revision"].GetInt64() == 2);
  auto stale = s->update_task(parse(fmt::format(R"({{"id":"{}","title":"x","revision":1}})", id)));
  REQUIRE_FALSE(stale.ok());
  CHECK(stale.error().code == "conflict");
  auto bad = s->update_task(parse(fmt::format(R"({{"id":"{}","schedule_expr":"99 * * * *"}})", id)));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().pointer == "/schedule_expr");
  CHECK(str(task_of(*s, id), "schedule_expr") == "30 9 * * *");  // nothing stored
  auto deleted = s->delete_task(id);
  REQUIRE(deleted.ok());
  CHECK(s->get_task(id).error().code == "not_found");
  CHECK(s->delete_task(id).error().code == "not_found");
  CHECK(f.count("task.deleted") == 1);
}

TEST_CASE("a server that stops puts its running runs back in the queue for another") {
  Fixture f;
  f.tools.block_calls_left = 1;
  auto a = f.make("server-a");
  auto b = f.make("server-b");
  const std::string run_id = start_blocking_run(f, *a).run_id;
  a->shutdown();  // cancels the tool's context and waits for the worker
  auto released = run_of(*b, run_id);
  CHECK(str(released, "status") == "queued");
  CHECK(released["steps"].Size() == 0);
  CHECK(b->tick(f.now) == 1);
  REQUIRE(eventually([&] { return has_status(*b, run_id, "succeeded"); }));
  CHECK(a->tick(f.now) == 0);  // a stopped service claims nothing
}

TEST_CASE("a run the user cancelled stays cancelled when its server stops meanwhile") {
  Fixture f;
  auto a = f.make("server-a");
  const std::string run_id = start_blocking_run(f, *a).run_id;
  REQUIRE(a->cancel_run(run_id).ok());
  a->shutdown();
  CHECK(str(run_of(*a, run_id), "status") == "cancelled");
}

namespace {

// The real clock and a poll interval no test waits out: whatever runs, runs
// because the dispatcher woke for it.
void real_clock_hour_poll(ServiceOptions& options) {
  options.now_ms = {};
  options.poll_interval = std::chrono::hours(1);
}

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

TEST_CASE("the dispatcher wakes at the next due time, not at the poll interval") {
  Fixture f;
  auto s = f.make("server-a", 30'000, real_clock_hour_poll);
  std::jthread dispatcher([&](std::stop_token stop) { s->run(stop); });
  // A once task due at the first whole second at least 300 ms from now
  // (once times have whole seconds). Creating it wakes the dispatcher once;
  // from then on only its wait for the due time can start the run.
  const std::int64_t due = (wall_ms() + 300) / 1000 * 1000 + 1000;
  auto task = s->create_task(parse(fmt::format(R"({{"title":"soon","schedule_kind":"once","schedule_expr":"{}",
      "payload":{{"pipeline":[{{"uses":"test.echo","with":{{"text":"due"}}}}]}}}})",
                                               format_rfc3339_ms(due))));
  REQUIRE_MESSAGE(task.ok(), (task.ok() ? "" : task.error().message));
  CHECK(str(*task, "next_due_at") == format_rfc3339_ms(due));
  const std::string id = str(*task, "id");
  REQUIRE(eventually([&] {
    auto runs = runs_of(*s, id);
    return runs.size() == 1 && str(runs[0], "status") == "succeeded";
  }));
  const auto runs = runs_of(*s, id);
  const Json& run = runs[0];
  CHECK(str(run, "trigger") == "schedule");
  CHECK(str(run, "scheduled_for") == format_rfc3339_ms(due));
  CHECK(f.tools.echoes() == std::vector<std::string>{R"({"text":"due"})"});
  CHECK(task_of(*s, id)["next_due_at"].IsNull());  // a once task has no next occurrence
}

TEST_CASE("a sleeping dispatcher still wakes to renew the leases of its running runs") {
  Fixture f;
  auto s = f.make("server-a", 1'000, real_clock_hour_poll);  // renewed once 500 ms are left
  std::jthread dispatcher([&](std::stop_token stop) { s->run(stop); });
  auto task = s->create_task(parse(R"({"title":"long","schedule_kind":"manual","payload":{"pipeline":[{"uses":"test.block"}]}})"));
  REQUIRE(task.ok());
  auto queued = s->run_now(parse(fmt::format(R"({{"id":"{}"}})", str(*task, "id"))));  // wakes the dispatcher
  REQUIRE(queued.ok());
  const std::string run_id = str(*queued, "id");
  REQUIRE(eventually([&] { return f.tools.blocking_started.load() == 1; }));
  auto lease = [&] {
    auto r = s->store().get_run(run_id);
    REQUIRE(r.ok());
    REQUIRE(r->has_value());
    return (*r)->lease_expires_ms.value_or(0);
  };
  const std::int64_t first = lease();
  CHECK(first > 0);
  // Two renewals in a row: each comes only from the dispatcher waking for it.
  REQUIRE(eventually([&] { return lease() > first; }));
  const std::int64_t second = lease();
  REQUIRE(eventually([&] { return lease() > second; }));
  CHECK(str(run_of(*s, run_id), "status") == "running");
  CHECK(run_of(*s, run_id)["attempt"].GetInt() == 1);
  REQUIRE(s->cancel_run(run_id).ok());
  CHECK(eventually([&] { return has_status(*s, run_id, "cancelled"); }));
}

TEST_CASE("past the occurrences walked one by one, a long outage still ends at the exact latest occurrence") {
  Fixture f;
  auto s = f.make();
  auto skip = s->create_task(parse(R"({"title":"skip","schedule_kind":"cron","schedule_expr":"0 * * * *",
      "payload":{"pipeline":[{"uses":"test.echo","with":{"text":"skip"}}]}})"));
  auto once = s->create_task(parse(R"({"title":"once","schedule_kind":"cron","schedule_expr":"0 * * * *","catch_up":"run_once",
      "payload":{"pipeline":[{"uses":"test.echo","with":{"text":"caught up"}}]}})"));
  REQUIRE(skip.ok());
  REQUIRE(once.ok());
  // Down 60 days: 1,440 hourly occurrences (more than the 1,000 walked one
  // by one) from 01:00 on day 0 to 00:00 on day 60; now is 00:30 on day 60.
  constexpr std::int64_t kDay = 24 * 60 * kMinute;
  f.now = kT0 + 60 * kDay + 30 * kMinute;  // the runs' times too: retention (30 days) must not prune them
  CHECK(s->tick(f.now) == 1);
  REQUIRE(eventually([&] { return s->active_runs() == 0; }));
  auto skipped = runs_of(*s, str(*skip, "id"));
  REQUIRE(skipped.size() == 1);
  CHECK(str(skipped[0], "status") == "skipped");
  CHECK(str(skipped[0], "scheduled_for") == format_rfc3339_ms(kT0 + 60 * kDay));
  CHECK(str(skipped[0]["error"], "message").find("more than 1001 occurrence(s) from 2026-01-01T01:00:00.000Z") !=
        std::string::npos);
  auto caught = runs_of(*s, str(*once, "id"));
  REQUIRE(caught.size() == 1);
  CHECK(str(caught[0], "trigger") == "catch_up");
  CHECK(str(caught[0], "scheduled_for") == format_rfc3339_ms(kT0 + 60 * kDay));
  CHECK(eventually([&] { return has_status(*s, str(caught[0], "id"), "succeeded"); }));
  for (const std::string& id : {str(*skip, "id"), str(*once, "id")}) {
    CHECK(str(task_of(*s, id), "next_due_at") == format_rfc3339_ms(kT0 + 60 * kDay + 60 * kMinute));
  }
}

TEST_CASE("a task whose schedule another server changed is planned with the new one, not a compiled one kept") {
  Fixture f;
  auto s = f.make("server-a");
  auto other = f.make("server-b");  // shares the store, not server-a's compiled schedules
  auto task = s->create_task(parse(R"({"title":"t","schedule_kind":"cron","schedule_expr":"*/5 * * * *",
      "payload":{"pipeline":[{"uses":"test.echo","with":{"text":"tick"}}]}})"));
  REQUIRE(task.ok());
  const std::string id = str(*task, "id");
  CHECK(s->tick(kT0 + 5 * kMinute) == 1);  // plans with */5
  REQUIRE(eventually([&] { return s->active_runs() == 0; }));
  CHECK(str(task_of(*s, id), "next_due_at") == "2026-01-01T00:10:00.000Z");
  f.now = kT0 + 6 * kMinute;
  auto updated = other->update_task(parse(fmt::format(R"({{"id":"{}","schedule_expr":"*/7 * * * *"}})", id)));
  REQUIRE(updated.ok());
  CHECK(str(*updated, "next_due_at") == "2026-01-01T00:07:00.000Z");
  CHECK(s->tick(kT0 + 7 * kMinute) == 1);
  REQUIRE(eventually([&] { return s->active_runs() == 0; }));
  CHECK(str(task_of(*s, id), "next_due_at") == "2026-01-01T00:14:00.000Z");  // */5 would say 00:10
  CHECK(runs_of(*s, id).size() == 2);
}
