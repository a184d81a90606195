// observability and events_demo through the real ordinaut-server over loopback:
// promtool on the exposition, bounded size under invented URLs, SSE order,
// groups, resume, the listener example, and the same SSE test on Redis.
#include <atomic>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "../support/support.hpp"  // TempDir
#include "obs_support.hpp"

using namespace obs_test;

namespace {

// The exposition with every sample value removed: equal shapes mean the same
// families, series and order, whatever the numbers.
std::string shape(const std::string& body) {
  std::string out;
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != '#') line.resize(line.rfind(' '));
    out += line;
    out += '\n';
  }
  return out;
}

std::string publish(httplib::Client& c, const std::string& name, const std::string& body) {
  auto r = c.Post(("/ext/events_demo/publish/" + name).c_str(), body, "application/json");
  REQUIRE(r);
  REQUIRE_MESSAGE(r->status == 200, r->body);
  auto doc = parse_json(r->body);
  return doc["id"].GetString();
}

// Publishes `count` events to `name` and checks that `reader` gets them all,
// in publish order, each frame well formed with the JSON event as data.
void check_stream_order(int port, SseReader& reader, const std::string& name, int count) {
  auto c = client(port);
  std::vector<std::string> ids;
  for (int i = 0; i < count; ++i) ids.push_back(publish(*c, name, R"({"n":)" + std::to_string(i) + "}"));
  REQUIRE_MESSAGE(reader.wait_events(static_cast<std::size_t>(count), 20s),
                  "received " << reader.events().size() << " of " << count);
  auto events = reader.events();
  REQUIRE(events.size() == static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    const auto& e = events[static_cast<std::size_t>(i)];
    CHECK(e.id == ids[static_cast<std::size_t>(i)]);
    CHECK(e.event == "events_demo." + name);
    auto data = ordinaut::json::parse(e.data);
    REQUIRE_MESSAGE(data.ok(), "data is not JSON: " << e.data);
    CHECK(std::string((*data)["id"].GetString()) == e.id);
    CHECK(std::string((*data)["topic"].GetString()) == e.event);
    CHECK(std::string((*data)["source"].GetString()) == "events_demo");
    CHECK(std::regex_match(std::string((*data)["time"].GetString()),
                           std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z)")));
    CHECK((*data)["payload"]["n"].GetInt() == i);
  }
}

}  // namespace

TEST_CASE("the metrics endpoint has the exact content type and promtool finds nothing to report") {
  auto server = start_server();
  auto c = client(server->port());
  publish(*c, "lint", R"({"x":1})");
  REQUIRE(c->Get("/ext/listener/received"));
  REQUIRE(c->Get("/ext/webui/"));
  REQUIRE(c->Get("/ext/nope/x"));
  // Deliveries are asynchronous: the listener's counter appears once it counted the event.
  REQUIRE(eventually([&] { return value_of(scrape(server->port()), R"(ext_listener_received_total{source="events_demo"})") == 1; }));
  auto res = c->Get("/ext/observability/metrics");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->get_header_value("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
  const std::string& body = res->body;
  // Every part of the requirement is in there.
  for (const char* family :
       {"ordinaut_http_requests_total", "ordinaut_http_request_duration_seconds", "ordinaut_extension_requests_total",
        "ordinaut_extension_errors_total", "ordinaut_extension_request_duration_seconds",
        "ordinaut_extension_load_duration_seconds", "ordinaut_extension_state", "ordinaut_tool_calls_total",
        "ordinaut_tool_errors_total", "ordinaut_tool_call_duration_seconds", "ordinaut_events_published_total",
        "ordinaut_events_delivered_total", "ordinaut_events_failed_total", "ordinaut_events_dropped_total",
        "ordinaut_events_lag", "ordinaut_background_task_state", "ordinaut_background_task_restarts_total",
        "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_threads",
        "process_start_time_seconds", "ordinaut_task_runs_started_total", "ordinaut_task_runs_finished_total",
        "ordinaut_task_run_duration_seconds", "ordinaut_task_runs_running", "ordinaut_task_changes_total",
        "ordinaut_task_events_total", "ext_events_demo_published_total",
        "ext_listener_received_total"}) {
    CHECK_MESSAGE(body.find(std::string("# TYPE ") + family + " ") != std::string::npos, std::string(family));
  }
  auto lint = run_with_input("promtool check metrics", body);
  CHECK_MESSAGE(lint.exit_code == 0, lint.output);
  CHECK_MESSAGE(lint.output.empty(), lint.output);
  // promtool is not a rubber stamp: it does report a broken exposition.
  auto broken = run_with_input("promtool check metrics", "# TYPE x counter\nx 1\n");
  CHECK(broken.exit_code != 0);
  CHECK(!broken.output.empty());
}

TEST_CASE("10,000 distinct unknown URLs leave the metrics' series and size unchanged") {
  auto server = start_server();
  const int port = server->port();
  // Every kind of URL once, so each series they touch exists before the baseline.
  auto warm = client(port);
  auto kinds = [](int i) {
    const std::string n = std::to_string(i);
    return std::vector<std::pair<std::string, std::string>>{
        {"GET", "/ext/observability/unknown-" + n},
        {"GET", "/ext/events_demo/nothing/here/" + n + "?q=" + n},
        {"GET", "/ext/listener/r" + n},
        {"GET", "/ext/not_an_extension_" + n + "/x"},
        {"POST", "/ext/events_demo/publish/invented_" + n},
    };
  };
  for (const auto& [method, path] : kinds(0)) {
    auto r = method == "GET" ? warm->Get(path.c_str()) : warm->Post(path.c_str(), "{}", "application/json");
    REQUIRE(r);
  }
  // Deliveries are asynchronous: let the listener count the warm-up event first.
  REQUIRE(eventually([&] { return value_of(scrape(port), R"(ext_listener_received_total{source="events_demo"})") == 1; }));
  const std::string before = scrape(port);

  std::atomic<int> sent{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      auto c = client(port);
      for (int i = 1 + t; i <= 10000; i += 2) {
        const auto all = kinds(i);
        const auto& [method, path] = all[static_cast<std::size_t>(i) % all.size()];
        auto r = method == "GET" ? c->Get(path.c_str()) : c->Post(path.c_str(), "{}", "application/json");
        if (r) {
          ++sent;
        } else {
          ++failed;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  REQUIRE(sent.load() == 10000);
  const std::string after = scrape(port);

  CHECK(series_set(after) == series_set(before));
  CHECK(shape(after) == shape(before));
  CHECK(shape(after).size() == shape(before).size());
  for (int i = 1; i <= 10000; i += 997) {
    CHECK(after.find("unknown-" + std::to_string(i)) == std::string::npos);
    CHECK(after.find("invented_" + std::to_string(i)) == std::string::npos);
  }
  // The requests were counted, under their templates.
  auto grew = [&](const std::string& series, double by) {
    CHECK_MESSAGE(value_of(after, series) - value_of(before, series) == by, series);
  };
  grew(R"m(ordinaut_http_requests_total{extension="observability",method="*",route="(unrouted)",status_class="4xx"})m",
       2000);
  grew(R"(ordinaut_http_requests_total{extension="events_demo",method="POST",route="/publish/{name}",status_class="2xx"})",
       2000);
  grew(R"m(ordinaut_http_requests_total{extension="(host)",method="*",route="(host)",status_class="4xx"})m", 2000);
  grew("ext_events_demo_published_total", 2000);
}

TEST_CASE("an SSE client receives published events in order with valid JSON, and leaving ends the stream") {
  auto server = start_server();
  const int port = server->port();
  {
    SseReader reader(port, "/ext/events_demo/stream/order?heartbeat=0.2");
    REQUIRE(reader.wait_open());
    CHECK(reader.status() == 200);
    CHECK(reader.content_type().find("text/event-stream") == 0);
    check_stream_order(port, reader, "order", 300);
    CHECK(reader.wait_for([](const auto&, int comments) { return comments >= 3; }, 3s));  // heartbeats
    REQUIRE(eventually([&] { return value_of(scrape(port), "ext_events_demo_streams") == 1; }));
  }  // the client leaves
  // events_demo notices at the next heartbeat and cancels the subscription.
  CHECK(eventually([&] {
    const std::string body = scrape(port);
    return value_of(body, "ext_events_demo_streams") == 0 &&
           value_of(body, R"(ordinaut_event_subscriptions{extension="events_demo"})") == 1;
  }));
  // The listener example heard the same events.
  auto got = client(port)->Get("/ext/listener/received?limit=100");
  REQUIRE(got);
  auto doc = parse_json(got->body);
  CHECK(doc["total"].GetUint64() == 300);
  CHECK(doc["events"].Size() == 100);
  CHECK(doc["events"][99]["payload"]["n"].GetInt() == 299);
}

TEST_CASE("streams in one group share the events; a stream without a group gets them all") {
  auto server = start_server();
  const int port = server->port();
  SseReader a(port, "/ext/events_demo/stream/shared?heartbeat=0.2&group=workers&consumer=a");
  SseReader b(port, "/ext/events_demo/stream/shared?heartbeat=0.2&group=workers&consumer=b");
  SseReader all(port, "/ext/events_demo/stream/shared?heartbeat=0.2");
  REQUIRE(a.wait_open());
  REQUIRE(b.wait_open());
  REQUIRE(all.wait_open());
  auto c = client(port);
  std::set<std::string> ids;
  for (int i = 0; i < 200; ++i) ids.insert(publish(*c, "shared", std::to_string(i)));
  REQUIRE(all.wait_events(200));
  REQUIRE(eventually([&] { return a.events().size() + b.events().size() == 200; }));
  std::set<std::string> seen;
  for (auto* r : {&a, &b}) {
    for (const auto& e : r->events()) CHECK_MESSAGE(seen.insert(e.id).second, "delivered twice: " << e.id);
  }
  CHECK(seen == ids);
  std::this_thread::sleep_for(300ms);
  CHECK(a.events().size() + b.events().size() == 200);  // nothing more arrives
}

TEST_CASE("a stream resumes after Last-Event-ID from events_demo's history") {
  auto server = start_server();
  const int port = server->port();
  auto c = client(port);
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) ids.push_back(publish(*c, "resume", std::to_string(i)));
  REQUIRE(eventually([&] { return c->Get("/ext/events_demo/recent?name=resume")->body.find(ids[9]) != std::string::npos; }));
  SseReader reader(port, "/ext/events_demo/stream/resume?heartbeat=0.2", {{"Last-Event-ID", ids[6]}});
  REQUIRE(reader.wait_events(3));
  ids.push_back(publish(*c, "resume", "10"));
  REQUIRE(reader.wait_events(4));
  std::this_thread::sleep_for(200ms);
  auto events = reader.events();
  REQUIRE(events.size() == 4);
  for (std::size_t i = 0; i < 4; ++i) CHECK(events[i].id == ids[7 + i]);
}

TEST_CASE("the scheduler's task runs reach observability as task statistics") {
  test_support::TempDir data;
  auto server = start_server({"--data-dir", data.path().string()});
  const int port = server->port();
  auto c = client(port);
  auto post = [&](const std::string& path, const std::string& body, int expect) {
    auto r = c->Post(path, body, "application/json");
    REQUIRE(r);
    REQUIRE_MESSAGE(r->status == expect, path << ": " << r->body);
    return parse_json(r->body);
  };
  // Manual tasks whose one step is the listener example's tool: limit 1 is
  // fine; limit 0, given through a template so that it is checked only when
  // rendered, fails the tool's input schema at run time (not retried).
  auto ok = post("/ext/scheduler/api/tasks",
                 R"({"title":"read","schedule_kind":"manual",
                     "payload":{"pipeline":[{"uses":"ext.listener.received","with":{"limit":1}}]}})",
                 201);
  auto bad = post("/ext/scheduler/api/tasks",
                  R"({"title":"broken","schedule_kind":"manual",
                      "payload":{"params":{"limit":0},
                                 "pipeline":[{"uses":"ext.listener.received","with":{"limit":"${params.limit}"}}]}})",
                  201);
  const std::string ok_id = ok["id"].GetString(), bad_id = bad["id"].GetString();
  std::vector<std::string> runs;
  for (const auto& id : {ok_id, ok_id, bad_id}) {
    runs.emplace_back(post("/ext/scheduler/api/tasks/" + id + "/run", "", 202)["id"].GetString());
  }
  // Wait for the runs themselves to end (the store has the truth)...
  auto status_of = [&](const std::string& run) {
    auto r = c->Get(("/ext/scheduler/api/runs/" + run).c_str());
    REQUIRE(r);
    REQUIRE(r->status == 200);
    return std::string(parse_json(r->body)["status"].GetString());
  };
  REQUIRE(eventually([&] { return status_of(runs[0]) == "succeeded" && status_of(runs[1]) == "succeeded"; }, 90s));
  REQUIRE(eventually([&] { return status_of(runs[2]) == "failed"; }, 90s));
  // ...then for their events to be counted (delivery is asynchronous).
  std::string body;
  REQUIRE(eventually([&] {
    body = scrape(port);
    return value_of(body, R"(ordinaut_task_runs_finished_total{source="scheduler",status="succeeded"})") == 2 &&
           value_of(body, R"(ordinaut_task_runs_finished_total{source="scheduler",status="failed"})") == 1;
  }, 90s));
  CHECK(value_of(body, R"(ordinaut_task_runs_started_total{source="scheduler"})") == 3);
  CHECK(value_of(body, R"(ordinaut_task_runs_running{source="scheduler"})") == 0);
  CHECK(value_of(body, R"(ordinaut_task_runs_finished_total{source="scheduler",status="cancelled"})") == 0);
  CHECK(value_of(body, R"(ordinaut_task_run_duration_seconds_count{source="scheduler",status="succeeded"})") == 2);
  CHECK(value_of(body, R"(ordinaut_task_run_duration_seconds_bucket{source="scheduler",status="succeeded",le="+Inf"})") ==
        2);
  CHECK(value_of(body, R"(ordinaut_task_run_duration_seconds_sum{source="scheduler",status="succeeded"})") >= 0);
  CHECK(value_of(body, R"(ordinaut_task_run_duration_seconds_count{source="scheduler",status="failed"})") == 1);
  CHECK(value_of(body, R"(ordinaut_task_changes_total{change="created",source="scheduler"})") == 2);
  CHECK(value_of(body, R"(ordinaut_task_events_total{kind="invalid"})") == 0);
  // The tool calls themselves, per tool.
  CHECK(value_of(body, R"(ordinaut_tool_calls_total{tool="ext.listener.received",owner="listener"})") == 3);
  CHECK(value_of(body, R"(ordinaut_tool_errors_total{tool="ext.listener.received",owner="listener"})") == 1);
  // Deleting a task is counted too; task and run ids never become labels.
  auto del = c->Delete(("/ext/scheduler/api/tasks/" + bad_id).c_str());
  REQUIRE(del);
  CHECK(del->status / 100 == 2);
  REQUIRE(eventually([&] {
    body = scrape(port);
    return value_of(body, R"(ordinaut_task_changes_total{change="deleted",source="scheduler"})") == 1;
  }, 90s));
  CHECK(body.find(ok_id) == std::string::npos);
  CHECK(body.find(runs[0]) == std::string::npos);
  CHECK(body.find("task_id") == std::string::npos);
  auto lint = run_with_input("promtool check metrics", body);
  CHECK_MESSAGE(lint.output.empty(), lint.output);
}

TEST_CASE("an SSE client receives published events in order on the Redis Streams bus") {
  RedisServer redis;
  auto server = start_server({"--redis-url", redis.url()});
  const int port = server->port();
  auto body = scrape(port);
  CHECK(body.find(R"(ordinaut_events_published_total{bus="redis"})") != std::string::npos);
  SseReader reader(port, "/ext/events_demo/stream/redis_order?heartbeat=0.2");
  REQUIRE(reader.wait_open());
  check_stream_order(port, reader, "redis_order", 200);
  auto lint = run_with_input("promtool check metrics", scrape(port));
  CHECK_MESSAGE(lint.output.empty(), lint.output);
}

using server_test::rss_kib;

// ---- issue 13: hostile bodies against the real server ----------------------------

TEST_CASE("events_demo: JSON nested 200,000 deep gets a 400 with the offset, and the server keeps serving") {
  auto server = start_server();
  auto c = client(server->port());
  // 200 KB and 1 MB, under the 1 MiB body limit. The first used to kill the server with SIGSEGV.
  for (const char* open : {"[", "{\"a\":"}) {
    CAPTURE(open);
    std::string body;
    for (int i = 0; i < 200'000; ++i) body += open;
    auto r = c->Post("/ext/events_demo/publish/x", body, "application/json");
    REQUIRE(r);
    CHECK(r->status == 400);
    auto doc = parse_json(r->body);
    const std::uint64_t offset = doc["details"]["offset"].GetUint64();
    CHECK(offset == 512 * std::string(open).size());
    CHECK(std::string(doc["message"].GetString()).find("(offset " + std::to_string(offset) + ")") !=
          std::string::npos);
  }
  auto health = c->Get("/health");
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(publish(*c, "after", "{}").size() > 0);
}

TEST_CASE("events_demo: large payloads keep the server's memory bounded (history by bytes)") {
  auto server = start_server({}, {server_test::small_asan_quarantine()});
  auto c = client(server->port());
  // ~900 KB of text, ~7 MiB as a DOM: the old history kept 1,024 such DOMs.
  std::string big = "[1";
  while (big.size() < 900 * 1024) big += ",1";
  big += "]";
  for (int i = 0; i < 5; ++i) publish(*c, "big", big);  // warm-up: allocator pools, threads
  const std::size_t before = rss_kib(server->pid());
  std::string last;
  for (int i = 0; i < 120; ++i) last = publish(*c, "big", big);
  REQUIRE(eventually([&] {
    auto r = c->Get("/ext/events_demo/recent?limit=1");
    return r && r->body.find(last) != std::string::npos;
  }, 30s));
  const std::size_t after = rss_kib(server->pid());
  INFO("RSS before " << before << " KiB, after " << after << " KiB");
  CHECK(before > 0);
  CHECK(after < before + 160 * 1024);  // unbounded: 120 x ~7 MiB
  auto recent = c->Get("/ext/events_demo/recent?limit=1000");
  REQUIRE(recent);
  CHECK(recent->body.size() <= 2 * 1024 * 1024);  // one page: at most 1 MiB of events, one event at least
}
