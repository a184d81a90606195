// The scheduler extension in the real ordinaut-server over loopback HTTP:
// bad input is refused with a pointer and stores nothing; a task runs on its
// schedule and through run_now; tasks and run history survive a restart on
// the same data folder and the task keeps running; an event task fires on a
// publish; a long run is cancelled through its tool's cancellation; a bad
// --scheduler-store is refused. Waits are for states, with generous deadlines.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <iterator>
#include <mutex>
#include <functional>
#include <thread>

#include <doctest/doctest.h>

#include "../server/common.hpp"
#include "http_helpers.hpp"
#include "support.hpp"

using namespace server_test;
using namespace scheduler_test;

namespace {

// The record file of schedtest's tools: calls.txt in the data folder.
std::unique_ptr<ServerProcess> start(const std::filesystem::path& data, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"--insecure-no-auth", "--data-dir", data.string(), "--ext-path",
                                   env_or_throw("ORDINAUT_SCHEDTEST_DIR")};
  args.insert(args.end(), extra.begin(), extra.end());
  return start_server(args, {{"ORDINAUT_SCHEDTEST_RECORD", (data / "calls.txt").string()}});
}

bool recorded(const std::filesystem::path& data, const std::string& key) {
  return recorded_calls(data / "calls.txt").count(key) == 1;
}

std::size_t succeeded_runs(int port, const std::string& task_id) {
  auto page = get_json(port, "/ext/scheduler/api/runs?status=succeeded&task_id=" + task_id);
  return page["runs"].Size();
}

}  // namespace

TEST_CASE("bad tasks are refused with a pointer and nothing is stored") {
  test_support::TempDir data;
  auto server = start(data.path());
  const int port = server->port();
  struct Case {
    const char* body;
    const char* pointer;
  };
  for (const Case& c : {
           Case{R"({"title":"t","schedule_kind":"cron","schedule_expr":"*/5 * * *"})", "/schedule_expr"},
           Case{R"({"title":"t","schedule_kind":"rrule","schedule_expr":"FREQ=DAILY;BYHOUR=25"})", "/schedule_expr"},
           Case{R"({"title":"t","schedule_kind":"cron","schedule_expr":"0 9 * * *","timezone":"Europe/Atlantis"})",
                "/timezone"},
           Case{R"({"title":"t","schedule_kind":"manual","payload":{"pipeline":[{"uses":"ext.nobody.nothing"}]}})",
                "/payload/pipeline/0/uses"},
           Case{R"({"title":"t","schedule_kind":"manual","payload":{"pipeline":[{"uses":"ext.events_demo.publish","with":{"topic":"x"}}]}})",
                "/payload/pipeline/0/with"},
           Case{R"({"title":"t","schedule_kind":"sometimes"})", "/schedule_kind"},
       }) {
    CAPTURE(c.body);
    auto res = client(port)->Post("/ext/scheduler/api/tasks", c.body, "application/json");
    REQUIRE(res);
    CHECK(res->status == 400);
    check_error_shape(res->body, "bad_request");
    auto doc = parse_json(res->body);
    CHECK(str(doc["details"], "pointer").starts_with(c.pointer));
  }
  CHECK(get_json(port, "/ext/scheduler/api/tasks")["tasks"].Size() == 0);
  auto missing = client(port)->Get("/ext/scheduler/api/tasks/tsk_nope");
  REQUIRE(missing);
  CHECK(missing->status == 404);
}

TEST_CASE("a task runs on its schedule and on demand, and survives a restart") {
  test_support::TempDir data;
  std::string task_id;
  std::size_t before_restart = 0;
  {
    auto server = start(data.path());
    const int port = server->port();
    auto created = parse_json(post(port, "/ext/scheduler/api/tasks",
                                   R"({"title":"tick","schedule_kind":"rrule","schedule_expr":"FREQ=SECONDLY;INTERVAL=2",
          "payload":{"params":{"topic":"tick"},"pipeline":[
            {"id":"publish","uses":"ext.events_demo.publish","with":{"topic":"${params.topic}","payload":{"at":"${now}"}},"save_as":"p"}]}})",
                                   201));
    task_id = str(created, "id");
    REQUIRE(eventually([&] { return succeeded_runs(port, task_id) >= 2; }));
    // On demand, with a parameter override.
    auto queued = parse_json(post(port, "/ext/scheduler/api/tasks/" + task_id + "/run", R"({"params":{"topic":"manual"}})", 202));
    const std::string run_id = str(queued, "id");
    REQUIRE(eventually([&] { return str(get_json(port, "/ext/scheduler/api/runs/" + run_id), "status") == "succeeded"; }));
    auto run = get_json(port, "/ext/scheduler/api/runs/" + run_id);
    CHECK(str(run, "trigger") == "manual");
    CHECK(str(run["steps"][0]["output"], "topic") == "events_demo.manual");
    before_restart = succeeded_runs(port, task_id);
    server->kill(SIGTERM);
    REQUIRE(server->wait(std::chrono::seconds(30)).has_value());
  }
  auto server = start(data.path());
  const int port = server->port();
  auto task = get_json(port, "/ext/scheduler/api/tasks/" + task_id);
  CHECK(str(task, "title") == "tick");
  CHECK(succeeded_runs(port, task_id) >= before_restart);
  // It keeps running after the restart.
  CHECK(eventually([&] { return succeeded_runs(port, task_id) >= before_restart + 2; }));
}

TEST_CASE("an event task fires on a matching publish, with the event in its templates") {
  test_support::TempDir data;
  auto server = start(data.path());
  const int port = server->port();
  auto created = parse_json(post(port, "/ext/scheduler/api/tasks",
                                 R"({"title":"on order","schedule_kind":"event","schedule_expr":"events_demo.order.*",
        "payload":{"pipeline":[{"uses":"ext.events_demo.publish","with":{"topic":"handled","payload":{"order":"${event.payload.n}","topic":"${event.topic}"}}}]}})",
                                 201));
  const std::string task_id = str(created, "id");
  post(port, "/ext/events_demo/publish/order.created", R"({"n":42})", 200);
  REQUIRE(eventually([&] { return succeeded_runs(port, task_id) == 1; }));
  auto runs = get_json(port, "/ext/scheduler/api/runs?task_id=" + task_id);
  const auto& run = runs["runs"][0];
  CHECK(str(run, "trigger") == "event");
  CHECK(run["steps"][0]["input"]["payload"]["order"].GetInt() == 42);
  CHECK(str(run["steps"][0]["input"]["payload"], "topic") == "events_demo.order.created");
  // Neither a topic outside the pattern nor its own publish (events_demo.handled)
  // fires it: the bus delivers in order, so once the next matching event's run
  // is there, a wrong run would be too.
  post(port, "/ext/events_demo/publish/invoice.created", R"({"n":1})", 200);
  post(port, "/ext/events_demo/publish/order.updated", R"({"n":43})", 200);
  REQUIRE(eventually([&] { return succeeded_runs(port, task_id) >= 2; }));
  CHECK(get_json(port, "/ext/scheduler/api/runs?task_id=" + task_id)["runs"].Size() == 2);
}

TEST_CASE("GET /runs/stream sends the changes of a run as Server-Sent Events") {
  test_support::TempDir data;
  auto server = start(data.path());
  const int port = server->port();
  auto created = parse_json(post(port, "/ext/scheduler/api/tasks",
                                 R"({"title":"m","schedule_kind":"manual","payload":{"pipeline":[{"uses":"ext.events_demo.publish","with":{"topic":"x","payload":1}}]}})",
                                 201));
  const std::string task_id = str(created, "id");
  std::mutex mutex;
  std::string received;
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    auto c = client(port);
    c->set_read_timeout(120, 0);
    c->Get("/ext/scheduler/api/runs/stream?task_id=" + task_id, [&](const char* chunk, std::size_t length) {
      std::lock_guard lock(mutex);
      received.append(chunk, length);
      return !stop.load();
    });
  });
  // Ends the reader however the test ends (a failed REQUIRE throws): the
  // stream's next heartbeat (5 s) returns from the read.
  struct Join {
    std::atomic<bool>& stop;
    std::thread& reader;
    ~Join() {
      stop = true;
      if (reader.joinable()) reader.join();
    }
  } join{stop, reader};
  auto text = [&] {
    std::lock_guard lock(mutex);
    return received;
  };
  REQUIRE(eventually([&] { return text().find(": scheduler run changes") != std::string::npos; }));
  auto queued = parse_json(post(port, "/ext/scheduler/api/tasks/" + task_id + "/run", "", 202));
  const std::string run_id = str(queued, "id");
  const bool done = eventually([&] { return text().find("event: task.run.succeeded") != std::string::npos; });
  stop = true;
  reader.join();
  REQUIRE(done);
  const std::string all = text();
  const auto started = all.find("event: task.run.started");
  const auto succeeded = all.find("event: task.run.succeeded");
  REQUIRE(started != std::string::npos);
  CHECK(started < succeeded);
  CHECK(all.find(run_id) != std::string::npos);
}

TEST_CASE("cancelling a long run stops its tool through the tool's cancellation") {
  test_support::TempDir data;
  auto server = start(data.path());
  const int port = server->port();
  // ext.schedtest.wait waits 10 minutes unless cancelled; the test's deadlines
  // are far shorter, so a run that ends "cancelled" here was stopped by the cancel.
  auto created = parse_json(post(port, "/ext/scheduler/api/tasks",
                                 R"({"title":"long","schedule_kind":"manual","payload":{"pipeline":[
        {"id":"wait","uses":"ext.schedtest.wait","with":{"ms":600000,"mark":"long"}},
        {"id":"after","uses":"ext.schedtest.wait","with":{"ms":0}}]}})",
                                 201));
  const std::string task_id = str(created, "id");
  const std::string run_id = str(parse_json(post(port, "/ext/scheduler/api/tasks/" + task_id + "/run", "", 202)), "id");
  // The tool is running once it has recorded its mark.
  REQUIRE(eventually([&] { return recorded(data.path(), "long"); }));

  auto cancelled = parse_json(post(port, "/ext/scheduler/api/runs/" + run_id + "/cancel", "", 200));
  CHECK(str(cancelled, "id") == run_id);
  REQUIRE(eventually([&] { return str(get_json(port, "/ext/scheduler/api/runs/" + run_id), "status") == "cancelled"; },
                     std::chrono::seconds(60)));
  auto run = get_json(port, "/ext/scheduler/api/runs/" + run_id);
  REQUIRE(run["steps"].Size() == 1);  // the second step never ran
  CHECK(str(run["steps"][0], "status") == "cancelled");
  CHECK(run["steps"][0]["duration_ms"].GetInt64() < 600000);
  CHECK(run["finished_at"].IsString());

  CHECK(cancelled["cancel_requested"].GetBool());
  // Cancelling a finished run is idempotent: it answers the run, unchanged.
  auto again = parse_json(post(port, "/ext/scheduler/api/runs/" + run_id + "/cancel", "", 200));
  CHECK(str(again, "status") == "cancelled");
  CHECK(!again.HasMember("cancel_requested"));
  auto unknown = client(port)->Post("/ext/scheduler/api/runs/run_nope/cancel", "", "application/json");
  REQUIRE(unknown);
  CHECK(unknown->status == 404);
}

TEST_CASE("--scheduler-store: a bad spec stops the server; an unreachable database fails only the scheduler") {
  test_support::TempDir data;
  const auto out = data.path() / "out.txt";
  const auto err = data.path() / "err.txt";
  auto status = run_to_end(server_binary(), {"--port", "0", "--scheduler-store", "mysql://db/ordinaut"}, out, err);
  CHECK(status.exited);
  CHECK(status.code == 2);
  std::ifstream err_in(err);
  const std::string err_text((std::istreambuf_iterator<char>(err_in)), std::istreambuf_iterator<char>());
  CHECK(err_text.find("--scheduler-store is sqlite:PATH or postgresql://") != std::string::npos);

  // Port 1 on loopback refuses connections. The server runs; the scheduler is
  // in error with the cause, without the URL's password; its routes answer 503.
  auto server = start(data.path(), {"--scheduler-store", "postgresql://ordinaut:s3cret-pw@127.0.0.1:1/ordinaut"});
  const int port = server->port();
  auto status_doc = get_json(port, "/ext/status");
  const auto& entry = status_doc["extensions"]["scheduler"];
  CHECK(str(entry, "state") == "error");
  const std::string last_error = str(entry, "last_error");
  CHECK(last_error.find("postgresql://ordinaut:***@127.0.0.1:1/ordinaut") != std::string::npos);
  CHECK(last_error.find("s3cret-pw") == std::string::npos);
  auto res = client(port)->Get("/ext/scheduler/api/tasks");
  REQUIRE(res);
  CHECK(res->status == 503);
  CHECK(res->body.find("s3cret-pw") == std::string::npos);
  CHECK(server->log().find("s3cret-pw") == std::string::npos);
  // Other extensions are unaffected.
  CHECK(client(port)->Get("/ext/events_demo/health")->status == 200);
}
