// examples/hello, built as a shared module with its manifest beside it, loaded
// through ORDINAUT_EXT_PATHS pointing at its build folder.
#include <doctest/doctest.h>

#include <ordinaut/host.hpp>

#include "support.hpp"

#ifndef ORDINAUT_HELLO_DIR
#error "ORDINAUT_HELLO_DIR must name build/examples/hello"
#endif

using namespace test_support;

TEST_CASE("examples/hello loads through ORDINAUT_EXT_PATHS and answers its routes") {
  ScopedEnv paths("ORDINAUT_EXT_PATHS", std::string(ORDINAUT_HELLO_DIR));
  ScopedEnv grants("ORDINAUT_EXT_ENTRY_GRANTS", std::nullopt);
  ScopedEnv eager("ORDINAUT_EXT_ENTRY_EAGER", std::nullopt);
  ScopedEnv scopes("ORDINAUT_REQUIRE_SCOPES", std::nullopt);
  LogCapture logs;
  ordinaut::HostOptions options;
  options.log_sink = logs.sink();
  ordinaut::ExtensionHost host(std::move(options));
  REQUIRE(host.start().ok());

  ordinaut::Json status = host.status();
  REQUIRE(status["extensions"].HasMember("hello"));
  CHECK(str(status["extensions"]["hello"]["state"]) == "discovered");
  CHECK(str(status["discovery_sources"][0]) == std::string("path:") + ORDINAUT_HELLO_DIR);

  auto ping = make_request("GET", "/ext/hello/ping");
  auto r = host.handle(ping);
  CHECK(r.status == 200);
  CHECK(r.body == R"({"pong":true})");
  CHECK(r.headers.get("Content-Type") == "application/json");

  auto greet = make_request("GET", "/ext/hello/greet/Ana%20Maria");
  auto g = host.handle(greet);
  CHECK(g.status == 200);
  CHECK(str(parse_json(g.body)["greeting"]) == "Hello, Ana Maria!");
  CHECK(str(host.status()["extensions"]["hello"]["state"]) == "active");
}
