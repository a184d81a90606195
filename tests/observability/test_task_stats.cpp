// observability's task statistics (lib/extensions/observability/task_stats.cpp)
// in process: events of the scheduler's shapes fed straight into TaskStats,
// the exposition read back from a real MetricsRegistry. Also under TSan.
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include <ordinaut/json.hpp>
#include <ordinaut/metrics.hpp>

#include "../../lib/extensions/observability/task_stats.hpp"

using ordinaut::observability::parse_rfc3339_ms;
using ordinaut::observability::TaskStats;

namespace {

ordinaut::Event event(std::string topic, const std::string& payload, std::string source = "scheduler") {
  ordinaut::Event e;
  e.id = "1";
  e.topic = std::move(topic);
  e.source = std::move(source);
  auto doc = ordinaut::json::parse(payload);
  REQUIRE_MESSAGE(doc.ok(), payload);
  e.payload = std::make_shared<const ordinaut::Json>(std::move(doc).value());
  return e;
}

// A run as the scheduler publishes it (service.cpp run_json).
std::string run(const std::string& id, const std::string& status, const std::string& started_at,
                const std::string& finished_at) {
  auto time = [](const std::string& t) { return t.empty() ? std::string("null") : "\"" + t + "\""; };
  return R"({"id":")" + id + R"(","task_id":"tsk_1","status":")" + status +
         R"(","trigger":"manual","attempt":0,"scheduled_for":"2026-12-02T10:00:00.000Z","started_at":)" +
         time(started_at) + R"(,"finished_at":)" + time(finished_at) + R"(,"steps":[],"error":null})";
}

std::string render(const ordinaut::MetricsRegistry& r) {
  std::string out;
  r.write_prometheus(out);
  return out;
}

double value_of(const std::string& body, const std::string& series) {
  const auto at = body.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(body.substr(at + series.size() + 2));
}

}  // namespace

TEST_CASE("RFC 3339 times are read to the millisecond, anything else is refused") {
  CHECK(parse_rfc3339_ms("1970-01-01T00:00:00Z") == 0);
  CHECK(parse_rfc3339_ms("1969-12-31T23:59:59Z") == -1000);
  CHECK(parse_rfc3339_ms("2026-12-24T18:00:00.250Z") == 1798135200250);
  CHECK(parse_rfc3339_ms("2026-12-24T19:30:00.250+01:30") == 1798135200250);
  CHECK(parse_rfc3339_ms("2026-12-24T16:00:00.25-02:00") == 1798135200250);
  CHECK(parse_rfc3339_ms("2026-12-24t18:00:00.250999z") == 1798135200250);  // beyond ms: truncated
  CHECK(parse_rfc3339_ms("2024-02-29T23:59:59.999Z") == 1709251199999);
  for (const char* bad : {"", "2026-12-24", "2026-12-24T18:00:00", "2026-12-24T18:00:00.Z", "2026-12-24T18:00:00ZZ",
                          "2023-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-13-01T00:00:00Z",
                          "2026-12-24T24:00:00Z", "2026-12-24T18:60:00Z", "2026-12-24T18:00:00+01", "2026-12-24T18:00:00+0100",
                          "20261224T180000Z", "2026-12-24T18:00:00 Z", "x026-12-24T18:00:00Z"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_rfc3339_ms(bad).has_value());
  }
}

TEST_CASE("scheduler events become run counts by status, durations, the running gauge and task changes") {
  ordinaut::MetricsRegistry registry;
  TaskStats stats(registry);
  // Before any event the scheduler's series exist at 0.
  std::string body = render(registry);
  CHECK(value_of(body, R"(ordinaut_task_runs_started_total{source="scheduler"})") == 0);
  CHECK(value_of(body, R"(ordinaut_task_runs_finished_total{source="scheduler",status="skipped"})") == 0);
  CHECK(value_of(body, R"(ordinaut_task_runs_running{source="scheduler"})") == 0);
  CHECK(value_of(body, R"(ordinaut_task_changes_total{change="deleted",source="scheduler"})") == 0);

  stats.record(event("task.created", R"({"id":"tsk_1","title":"t"})"));
  stats.record(event("task.updated", R"({"id":"tsk_1","title":"u"})"));
  stats.record(event("task.updated", R"({"id":"tsk_1","title":"v"})"));
  stats.record(event("task.run.started", run("run_a", "running", "2026-12-02T10:00:00.000Z", "")));
  stats.record(event("task.run.started", run("run_b", "running", "2026-12-02T10:00:01.000Z", "")));
  stats.record(event("task.run.started", run("run_c", "running", "2026-12-02T10:00:02.000Z", "")));
  body = render(registry);
  CHECK(value_of(body, R"(ordinaut_task_runs_running{source="scheduler"})") == 3);
  stats.record(event("task.run.succeeded", run("run_a", "succeeded", "2026-12-02T10:00:00.000Z",
                                                "2026-12-02T10:00:01.500Z")));
  stats.record(event("task.run.failed", run("run_b", "failed", "2026-12-02T10:00:01.000Z", "2026-12-02T10:00:01.020Z")));
  stats.record(event("task.run.cancelled", run("run_c", "cancelled", "2026-12-02T10:00:02.000Z",
                                                "2026-12-02T10:01:02.000Z")));
  // Ended without having started here: a queued run cancelled, a run that
  // failed before its pipeline began, a skipped occurrence. No duration.
  stats.record(event("task.run.cancelled", run("run_d", "cancelled", "", "2026-12-02T10:00:03.000Z")));
  stats.record(event("task.run.failed", run("run_e", "failed", "", "2026-12-02T10:00:03.000Z")));
  stats.record(event("task.run.skipped", run("run_f", "skipped", "", "")));
  stats.record(event("task.deleted", R"({"id":"tsk_1"})"));
  // Another publisher of the same shapes gets its own source label.
  stats.record(event("task.run.started", run("run_p", "running", "2026-12-02T10:00:00Z", ""), "probe"));

  body = render(registry);
  CHECK(value_of(body, R"(ordinaut_task_runs_started_total{source="scheduler"})") == 3);
  CHECK(value_of(body, R"(ordinaut_task_runs_finished_total{source="scheduler",status="succeeded"})") == 1);
  CHECK(value_of(body, R"(ordinaut_task_runs_finished_total{source="scheduler",status="failed"})") == 2);
  CHECK(value_of(body, R"(ordinaut_task_runs_finished_total{source="scheduler",status="cancelled"})") == 2);
  CHECK(value_of(body, R"(ordinaut_task_runs_finished_total{source="scheduler",status="skipped"})") == 1);
  CHECK(value_of(body, R"(ordinaut_task_runs_running{source="scheduler"})") == 0);
  CHECK(value_of(body, R"(ordinaut_task_run_duration_seconds_count{source="scheduler",status="succeeded"})") == 1);
  CHECK(value_of(body, R"(ordinaut_task_run_duration_seconds_sum{source="scheduler",status="succeeded"})") ==
        doctest::Approx(1.5));
  CHECK(value_of(body, R"(ordinaut_task_run_duration_seconds_bucket{source="scheduler",status="succeeded",le="1"})") ==
        0);
  CHECK(value_of(body, R"(ordinaut_task_run_duration_seconds_bucket{source="scheduler",status="succeeded",le="5"})") ==
        1);
  CHECK(value_of(body, R"(ordinaut_task_run_duration_seconds_count{source="scheduler",status="failed"})") == 1);
  CHECK(value_of(body, R"(ordinaut_task_run_duration_seconds_sum{source="scheduler",status="failed"})") ==
        doctest::Approx(0.02));
  CHECK(value_of(body, R"(ordinaut_task_run_duration_seconds_sum{source="scheduler",status="cancelled"})") ==
        doctest::Approx(60));
  CHECK(body.find(R"(ordinaut_task_run_duration_seconds_count{source="scheduler",status="skipped"})") ==
        std::string::npos);
  CHECK(value_of(body, R"(ordinaut_task_changes_total{change="created",source="scheduler"})") == 1);
  CHECK(value_of(body, R"(ordinaut_task_changes_total{change="updated",source="scheduler"})") == 2);
  CHECK(value_of(body, R"(ordinaut_task_changes_total{change="deleted",source="scheduler"})") == 1);
  CHECK(value_of(body, R"(ordinaut_task_runs_started_total{source="probe"})") == 1);
  CHECK(value_of(body, R"(ordinaut_task_runs_running{source="probe"})") == 1);
  CHECK(value_of(body, R"(ordinaut_task_events_total{kind="counted"})") == 14);
  CHECK(value_of(body, R"(ordinaut_task_events_total{kind="invalid"})") == 0);
  CHECK(value_of(body, R"(ordinaut_task_events_total{kind="ignored"})") == 0);
  CHECK(body.find("\"run_") == std::string::npos);  // run ids are never label values
  CHECK(body.find("\"tsk_") == std::string::npos);
}

TEST_CASE("a run started twice (re-run after a lost lease) is one running run; an unseen start never goes negative") {
  ordinaut::MetricsRegistry registry;
  TaskStats stats(registry);
  const std::string started = run("run_x", "running", "2026-12-02T10:00:00.000Z", "");
  stats.record(event("task.run.started", started));
  stats.record(event("task.run.started", started));
  std::string body = render(registry);
  CHECK(value_of(body, R"(ordinaut_task_runs_started_total{source="scheduler"})") == 2);
  CHECK(value_of(body, R"(ordinaut_task_runs_running{source="scheduler"})") == 1);
  stats.record(event("task.run.succeeded", run("run_x", "succeeded", "2026-12-02T10:00:00Z", "2026-12-02T10:00:00Z")));
  stats.record(event("task.run.succeeded", run("run_y", "succeeded", "2026-12-02T10:00:00Z", "2026-12-02T10:00:00Z")));
  body = render(registry);
  CHECK(value_of(body, R"(ordinaut_task_runs_running{source="scheduler"})") == 0);
  CHECK(value_of(body, R"(ordinaut_task_runs_finished_total{source="scheduler",status="succeeded"})") == 2);
  CHECK(value_of(body, R"(ordinaut_task_run_duration_seconds_bucket{source="scheduler",status="succeeded",le="0.01"})") ==
        2);  // zero-length runs are valid
}

TEST_CASE("malformed payloads are counted as invalid and change nothing; other task topics are ignored") {
  ordinaut::MetricsRegistry registry;
  TaskStats stats(registry);
  const std::string before = render(registry);
  const std::vector<std::pair<const char*, std::string>> invalid = {
      {"task.run.started", R"(["not","an","object"])"},
      {"task.run.started", R"("text")"},
      {"task.run.started", R"({"task_id":"tsk_1"})"},                   // no run id
      {"task.run.started", R"({"id":"run_1"})"},                        // no task id
      {"task.run.started", R"({"id":"","task_id":"tsk_1"})"},           // empty id
      {"task.run.started", R"({"id":7,"task_id":"tsk_1"})"},            // id not a string
      {"task.run.started", run("run_1", "succeeded", "2026-12-02T10:00:00Z", "")},  // status contradicts topic
      {"task.run.succeeded", run("run_1", "failed", "2026-12-02T10:00:00Z", "2026-12-02T10:00:01Z")},
      {"task.run.succeeded", run("run_1", "succeeded", "yesterday", "2026-12-02T10:00:01Z")},
      {"task.run.failed", run("run_1", "failed", "2026-12-02T10:00:00Z", "2026-13-02T10:00:01Z")},
      {"task.run.failed", run("run_1", "failed", "2026-12-02T10:00:02Z", "2026-12-02T10:00:01Z")},  // ends before it starts
      {"task.run.cancelled", R"({"id":"run_1","task_id":"tsk_1","started_at":12345})"},
      {"task.run.skipped", R"({"id":"run_1","task_id":"tsk_1","status":null})"},
      {"task.created", R"({"title":"no id"})"},
      {"task.updated", R"([1,2])"},
      {"task.deleted", R"({"id":""})"},
  };
  for (const auto& [topic, payload] : invalid) stats.record(event(topic, payload));
  ordinaut::Event no_payload;
  no_payload.topic = "task.run.succeeded";
  no_payload.source = "scheduler";
  stats.record(no_payload);
  // The retired topics of webui's in-memory tasks, and run topics the scheduler keeps to its SSE stream.
  for (const char* topic : {"task.started", "task.succeeded", "task.failed", "task.run.queued", "task.run.step",
                            "task.run.", "task.run", "task.runs.started", "task.created.x"}) {
    stats.record(event(topic, R"({"id":"run_1","task_id":"tsk_1","duration_ms":5})"));
  }
  std::string body = render(registry);
  CHECK(value_of(body, R"(ordinaut_task_events_total{kind="invalid"})") == static_cast<double>(invalid.size() + 1));
  CHECK(value_of(body, R"(ordinaut_task_events_total{kind="ignored"})") == 9);
  CHECK(value_of(body, R"(ordinaut_task_events_total{kind="counted"})") == 0);
  // Apart from the event counters the exposition is what it was.
  auto without_events = [](std::string text) {
    std::string out;
    std::size_t pos = 0;
    while (pos < text.size()) {
      auto end = text.find('\n', pos);
      std::string line = text.substr(pos, end - pos);
      if (line.find("ordinaut_task_events_total") == std::string::npos) out += line + "\n";
      pos = end == std::string::npos ? text.size() : end + 1;
    }
    return out;
  };
  CHECK(without_events(body) == without_events(before));
}

TEST_CASE("events recorded from several threads at once are all counted") {
  ordinaut::MetricsRegistry registry;
  TaskStats stats(registry);
  constexpr int kThreads = 4, kRuns = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string source = t % 2 == 0 ? "scheduler" : "other";
      for (int i = 0; i < kRuns; ++i) {
        const std::string id = "run_" + std::to_string(t) + "_" + std::to_string(i);
        stats.record(event("task.run.started", run(id, "running", "2026-12-02T10:00:00Z", ""), source));
        stats.record(event("task.run.succeeded",
                           run(id, "succeeded", "2026-12-02T10:00:00Z", "2026-12-02T10:00:00.100Z"), source));
      }
    });
  }
  for (auto& t : threads) t.join();
  const std::string body = render(registry);
  for (const char* source : {"scheduler", "other"}) {
    CAPTURE(source);
    const std::string s = std::string("source=\"") + source + "\"";
    CHECK(value_of(body, "ordinaut_task_runs_started_total{" + s + "}") == 2 * kRuns);
    CHECK(value_of(body, "ordinaut_task_runs_finished_total{" + s + ",status=\"succeeded\"}") == 2 * kRuns);
    CHECK(value_of(body, "ordinaut_task_run_duration_seconds_count{" + s + ",status=\"succeeded\"}") == 2 * kRuns);
    CHECK(value_of(body, "ordinaut_task_runs_running{" + s + "}") == 0);
  }
  CHECK(value_of(body, R"(ordinaut_task_events_total{kind="counted"})") == 2.0 * kThreads * kRuns);
}
