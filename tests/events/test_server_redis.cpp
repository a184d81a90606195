// Two ordinaut-server processes on one Redis (--redis-url / REDIS_URL) see each
// other's events: events_demo publishes on one, records on the other.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "../server/server_process.hpp"
#include "ordinaut/json.hpp"
#include "redis_server.hpp"
#include "wait.hpp"

using namespace server_test;
using ordinaut_test::RedisServer;
using ordinaut_test::wait_until;

namespace {

ordinaut::Json get_json(int port, const std::string& target) {
  auto r = raw_request(port, "GET", target);
  REQUIRE_MESSAGE(r.status == 200, target << " -> " << r.status << " " << r.body);
  auto doc = ordinaut::json::parse(r.body);
  REQUIRE(doc);
  return std::move(*doc);
}

}  // namespace

TEST_CASE("two servers on one Redis exchange events through events_demo") {
  const std::string server = env_or_throw("ORDINAUT_SERVER_BIN");
  RedisServer redis;
  ServerProcess a(server, {"--port", "0", "--no-request-log", "--redis-url", redis.url()});
  ServerProcess b(server, {"--port", "0", "--no-request-log"}, {{"REDIS_URL", redis.url()}});  // from the environment
  for (const ServerProcess* s : {&a, &b}) {
    auto status = get_json(s->port(), "/ext/status");
    CHECK(std::string(status["event_bus"]["kind"].GetString()) == "redis");
    CHECK(status["event_bus"]["connected"].GetBool());
    CHECK(std::string(status["event_bus"]["url"].GetString()) == redis.url());
  }
  // events_demo is lazy: the first request loads it (and its recording subscription) on b.
  REQUIRE(raw_request(b.port(), "GET", "/ext/events_demo/recent").status == 200);
  auto published = raw_request(a.port(), "POST", "/ext/events_demo/publish/greeting",
                                "Content-Type: application/json\r\n", R"({"hello":"from a"})");
  REQUIRE_MESSAGE(published.status == 200, published.body);
  auto sent = ordinaut::json::parse(published.body);
  REQUIRE(sent);
  const std::string id = (*sent)["id"].GetString();
  std::string recent;
  CHECK(wait_until([&] {
    recent = raw_request(b.port(), "GET", "/ext/events_demo/recent").body;
    return recent.find(id) != std::string::npos;
  }));
  INFO(recent);
  CHECK(recent.find(R"("hello":"from a")") != std::string::npos);
  CHECK(recent.find(R"("source":"events_demo")") != std::string::npos);
  // b's events_demo health has the bus check with its subscription's stream.
  auto health = get_json(b.port(), "/ext/events_demo/health");
  CHECK(std::string(health["checks"]["events"]["bus"].GetString()) == "redis");
  CHECK(health["checks"]["events"]["subscriptions"][0]["streams"].Size() >= 1);
  a.kill(SIGTERM);
  b.kill(SIGTERM);
  auto end_a = a.wait(std::chrono::seconds(20));
  auto end_b = b.wait(std::chrono::seconds(20));
  REQUIRE(end_a);
  REQUIRE(end_b);
  CHECK(end_a->code == 0);
  CHECK(end_b->code == 0);
}

TEST_CASE("a bad Redis URL stops the server with a clear message") {
  const std::string server = env_or_throw("ORDINAUT_SERVER_BIN");
  const auto dir = std::filesystem::temp_directory_path();
  const auto out = dir / ("ordinaut-events-srv-" + std::to_string(::getpid()) + ".out");
  const auto err = dir / ("ordinaut-events-srv-" + std::to_string(::getpid()) + ".err");
  auto flag = run_to_end(server, {"--port", "0", "--redis-url", "redis://cache:99999/0"}, out, err);
  CHECK(flag.exited);
  CHECK(flag.code == 2);
  CHECK(read_text(err).find("--redis-url") != std::string::npos);
  CHECK(read_text(err).find("port \"99999\"") != std::string::npos);
  ::setenv("REDIS_URL", "http://cache:6379", 1);
  auto env = run_to_end(server, {"--port", "0"}, out, err);
  ::unsetenv("REDIS_URL");
  CHECK(env.code == 2);
  CHECK(read_text(err).find("REDIS_URL") != std::string::npos);
  CHECK(read_text(err).find("redis://") != std::string::npos);
  std::filesystem::remove(out);
  std::filesystem::remove(err);
}
