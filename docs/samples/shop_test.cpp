// Unit tests of the docs' sample extension with TestClient (no sockets), and
// one test that loads the built module the way a host does. The code shown in
// docs/testing.md comes from here.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include <ordinaut/host.hpp>
#include <ordinaut/testing.hpp>

#include "shop.hpp"

using ordinaut::Capability;
using ordinaut::testing::TestClient;

namespace {

ordinaut::Json parse(const std::string& text) {
  auto doc = ordinaut::json::parse(text);
  REQUIRE(doc.ok());
  return std::move(doc).value();
}

std::string text(const ordinaut::JsonValue& value) { return value.IsString() ? value.GetString() : "(not a string)"; }

}  // namespace

TEST_CASE("an order is answered, counted and published with the shop as source") {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::string> seen;
  auto bus = ordinaut::make_memory_event_bus();
  auto sub = bus->subscribe(
      "test", "shop.*",
      [&](const ordinaut::Event& e) {
        std::lock_guard lock(mutex);
        seen.push_back(e.topic + " from " + e.source);
        cv.notify_all();
      },
      {});
  REQUIRE(sub.ok());

  TestClient client(std::make_unique<docs_sample::Shop>(),
                    {.grants = {Capability::ROUTES, Capability::TOOLS, Capability::EVENTS_PUB}, .event_bus = bus});
  REQUIRE(client.state() == ordinaut::ExtensionState::active);

  ordinaut::Response placed = client.post("/orders", R"({"sku":"pear","quantity":3})");
  CHECK(placed.status == 201);
  ordinaut::Json body = parse(placed.body);
  CHECK(body["total_cents"].GetInt64() == 165);

  ordinaut::Response found = client.get("/orders/" + std::to_string(body["order_id"].GetUint64()));
  CHECK(found.status == 200);
  CHECK(text(parse(found.body)["sku"]) == "pear");
  CHECK(client.get("/orders/999").status == 404);
  CHECK(client.get("/orders/abc").status == 400);

  {
    std::unique_lock lock(mutex);
    CHECK(cv.wait_for(lock, std::chrono::seconds(5), [&] { return !seen.empty(); }));
    REQUIRE(seen.size() == 1);
    CHECK(seen[0] == "shop.order_placed from shop");
  }
  bus->shutdown();
}

TEST_CASE("a bad body is refused by the route's schema before the handler runs") {
  TestClient client(std::make_unique<docs_sample::Shop>(), {.grants = {Capability::ROUTES}});
  ordinaut::Response r = client.post("/orders", R"({"sku":"pear","quantity":0})");
  CHECK(r.status == 400);
  ordinaut::Json error = parse(r.body);
  CHECK(text(error["error"]) == "bad_request");
  CHECK(text(error["details"]["pointer"]) == "/quantity");
  CHECK(client.post("/orders", "{not json").status == 400);
}

TEST_CASE("the tool checks its input and names the offending value") {
  TestClient client(std::make_unique<docs_sample::Shop>(), {.grants = {Capability::ROUTES, Capability::TOOLS}});
  auto quote = client.tools().call("ext.shop.quote", parse(R"({"sku":"plum","quantity":10})"));
  REQUIRE(quote.ok());
  CHECK(quote.value()["total_cents"].GetInt64() == 300);

  auto bad = client.tools().call("ext.shop.quote", parse(R"({"sku":"plum","quantity":"ten"})"));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == "invalid_input");
  CHECK(bad.error().pointer == "/quantity");
}

TEST_CASE("capabilities are granted only when approved, and each denial is audited") {
  TestClient client(std::make_unique<docs_sample::Shop>(), {.grants = {Capability::ROUTES}});
  CHECK(client.post("/orders", R"({"sku":"apple","quantity":1})").status == 201);  // works without EVENTS_PUB
  CHECK_FALSE(client.tools().get("ext.shop.quote").has_value());                     // no TOOLS: no tool

  std::vector<std::string> denied;
  for (const auto& record : client.audit_records()) {
    if (record.event == "capability_denied") denied.push_back(record.fields_json);
  }
  CHECK(denied.size() == 2);  // TOOLS and EVENTS_PUB, one line each
}

TEST_CASE("the built module loads from its folder like any external extension") {
  ordinaut::HostOptions options;
  options.read_environment = false;
  options.use_registered_extensions = false;
  options.extension_paths = {SHOP_MODULE_DIR};
  options.log_sink = [](const ordinaut::LogRecord&) {};
  ordinaut::ExtensionHost host(std::move(options));
  REQUIRE(host.start().ok());

  ordinaut::Request request;
  request.method = "GET";
  request.path = "/ext/shop/health";  // the first request loads the lazy extension
  ordinaut::Response r = host.handle(request);
  CHECK(r.status == 200);
  ordinaut::Json health = parse(r.body);
  CHECK(text(health["status"]) == "ok");
  CHECK(health["checks"]["catalog"]["items"].GetInt() == 3);
}
