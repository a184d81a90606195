// Two real ordinaut-servers sharing one real PostgreSQL 15 database (the
// scheduler's multi-server mode), over loopback HTTP:
//  - 200 due occurrences are each run exactly once, by both servers between
//    them: counted twice, in the store and by the tool's own side effect
//    (ext.schedtest.record appends one line per call to a file both servers
//    write, with the calling process' id);
//  - a server killed with SIGKILL in the middle of a run (its tool is
//    waiting) has that run picked up by the other server once the lease
//    expires, and finished there.
// Waits are for states, with generous deadlines; nothing asserts a duration.
#include <signal.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "../server/common.hpp"
#include "http_helpers.hpp"
#include "pg_server.hpp"
#include "support.hpp"

using namespace server_test;
using namespace scheduler_test;

namespace {

struct Cluster {
  test_support::PgServer pg;
  std::string database = pg.create_database();
  test_support::TempDir dir;
  std::filesystem::path record = dir.path() / "calls.txt";

  // A server on the shared database. Leases of 2 s (the least allowed) make
  // a dead server's run claimable soon; 2 workers each keep both servers busy.
  std::unique_ptr<ServerProcess> start(const std::string& name) {
    const auto data = dir.path() / name;
    std::filesystem::create_directories(data);
    return start_server({"--insecure-no-auth", "--data-dir", data.string(), "--scheduler-store", pg.uri(database),
                         "--ext-path", env_or_throw("ORDINAUT_SCHEDTEST_DIR")},
                        {{"ORDINAUT_SCHEDTEST_RECORD", record.string()},
                         {"ORDINAUT_SCHEDULER_LEASE_SECONDS", "2"},
                         {"ORDINAUT_SCHEDULER_WORKERS", "2"}});
  }

  /// key → the pids that recorded it.
  std::map<std::string, std::vector<std::string>> calls() const { return recorded_calls(record); }
};

std::string rfc3339(std::chrono::system_clock::time_point t) {
  const std::time_t s = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&s, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
}

}  // namespace

TEST_CASE("two servers on one PostgreSQL run each of 200 due occurrences exactly once") {
  Cluster cluster;
  auto a = cluster.start("a");
  auto b = cluster.start("b");
  const int ports[2] = {a->port(), b->port()};

  // One-off tasks due together, created through both servers. The due time is
  // far enough ahead for every creation to finish first: measured on this
  // machine with a few probe creations (a slow, loaded machine gets a later
  // time; the checks below do not depend on it).
  constexpr int kTasks = 200;
  const auto probe_start = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) {
    auto probe = parse_json(post(ports[i % 2], "/ext/scheduler/api/tasks",
                                 R"({"title":"probe","schedule_kind":"manual","payload":{"pipeline":[
          {"uses":"ext.schedtest.wait","with":{"ms":0}}]}})",
                                 201));
    auto res = client(ports[0])->Delete("/ext/scheduler/api/tasks/" + str(probe, "id"));
    REQUIRE(res);
    REQUIRE(res->status == 200);
  }
  const auto per_task = (std::chrono::steady_clock::now() - probe_start) / 5;
  const auto due = std::chrono::system_clock::now() + std::chrono::seconds(3) + per_task * kTasks * 4;
  const std::string at = rfc3339(std::chrono::ceil<std::chrono::seconds>(due));
  MESSAGE("the 200 tasks are due at " << at);

  std::set<std::string> task_ids;
  for (int i = 0; i < kTasks; ++i) {
    // Each run waits 100 ms first, so that no server can take them all before
    // the other one claims some.
    auto created = parse_json(post(ports[i % 2], "/ext/scheduler/api/tasks",
                                   fmt::format(R"({{"title":"t{0}","schedule_kind":"once","schedule_expr":"{1}",
          "payload":{{"params":{{"key":"k{0}"}},"pipeline":[
            {{"id":"wait","uses":"ext.schedtest.wait","with":{{"ms":100}}}},
            {{"id":"record","uses":"ext.schedtest.record","with":{{"key":"${{params.key}}"}}}}]}}}})",
                                               i, at),
                                   201));
    REQUIRE_MESSAGE(created["next_due_at"].IsString(), "task " << i << " was created after its due time " << at);
    task_ids.insert(str(created, "id"));
  }
  REQUIRE(task_ids.size() == kTasks);

  const auto succeeded = [&] {
    return std::stoi(cluster.pg.query(cluster.database, "SELECT count(*) FROM runs WHERE status = 'succeeded'")[0][0]);
  };
  const bool all_done = eventually([&] { return succeeded() >= kTasks; }, std::chrono::seconds(180));
  REQUIRE_MESSAGE(all_done, "succeeded runs: " << succeeded() << " of " << kTasks);

  // In the store: exactly one run per task, each succeeded on its first attempt.
  auto per_task_rows = cluster.pg.query(
      cluster.database, "SELECT task_id, count(*), min(status), max(status), max(attempt) FROM runs GROUP BY task_id");
  CHECK(per_task_rows.size() == kTasks);
  for (const auto& row : per_task_rows) {
    CAPTURE(row[0]);
    CHECK(task_ids.count(row[0]) == 1);
    CHECK(row[1] == "1");
    CHECK(row[2] == "succeeded");
    CHECK(row[3] == "succeeded");
    CHECK(row[4] == "1");
  }
  // By the tool's side effect: each key recorded once, and both servers ran some.
  auto calls = cluster.calls();
  CHECK(calls.size() == kTasks);
  std::map<std::string, int> by_pid;
  for (const auto& [key, pids] : calls) {
    CAPTURE(key);
    CHECK(pids.size() == 1);
    for (const auto& pid : pids) ++by_pid[pid];
  }
  CHECK(by_pid.count(std::to_string(a->pid())) == 1);
  CHECK(by_pid.count(std::to_string(b->pid())) == 1);
  MESSAGE("runs per server: a=" << by_pid[std::to_string(a->pid())] << " b=" << by_pid[std::to_string(b->pid())]);
  // Both servers answer the same history.
  CHECK(get_json(ports[1], "/ext/scheduler/api/tasks?limit=500")["tasks"].Size() == kTasks);
}

TEST_CASE("a server killed mid-run has its run finished by the other after the lease expires") {
  Cluster cluster;
  auto a = cluster.start("a");
  const int port_a = a->port();
  auto created = parse_json(post(port_a, "/ext/scheduler/api/tasks",
                                 R"({"title":"takeover","schedule_kind":"manual","payload":{"pipeline":[
        {"id":"wait","uses":"ext.schedtest.wait","with":{"ms":0,"mark":"started","first_ms":600000}},
        {"id":"record","uses":"ext.schedtest.record","with":{"key":"done"}}]}})",
                                 201));
  const std::string task_id = str(created, "id");
  const std::string run_id = str(parse_json(post(port_a, "/ext/scheduler/api/tasks/" + task_id + "/run", "", 202)), "id");
  // Server a runs it (b is not started yet, so it cannot be b): its first
  // step records "started" and then waits 10 minutes, far past every deadline
  // here. When b runs the pipeline again, that step finds the mark and does
  // not wait.
  REQUIRE(eventually([&] { return cluster.calls().count("started") == 1; }));
  auto b = cluster.start("b");
  const int port_b = b->port();
  const std::string pid_a = std::to_string(a->pid());  // a forgets it once reaped
  a->kill(SIGKILL);
  REQUIRE(a->wait(std::chrono::seconds(30)).has_value());

  // b claims the expired lease and runs the pipeline again from its start.
  const bool done = eventually(
      [&] { return str(get_json(port_b, "/ext/scheduler/api/runs/" + run_id), "status") == "succeeded"; },
      std::chrono::seconds(120));
  auto run = get_json(port_b, "/ext/scheduler/api/runs/" + run_id);
  REQUIRE_MESSAGE(done, "run: " << ordinaut::json::dump(run));
  CHECK(run["attempt"].GetInt() == 2);
  auto calls = cluster.calls();
  CHECK(calls["started"] == std::vector<std::string>{pid_a, std::to_string(b->pid())});
  CHECK(calls["done"] == std::vector<std::string>{std::to_string(b->pid())});
  // Exactly one run for the task: the takeover continued it, not a new one.
  CHECK(cluster.pg.query(cluster.database, "SELECT count(*) FROM runs WHERE task_id = '" + task_id + "'")[0][0] == "1");
}
