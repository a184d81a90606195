// After `meson install` the server finds the built-ins with no flag: install
// into a temporary DESTDIR and run the installed binary from there.
#include "staged_install.hpp"

using namespace server_test;
namespace fs = std::filesystem;

TEST_CASE("the installed ordinaut-server serves the installed built-ins with no flag") {
  StagedInstall staged;
  const fs::path bin = staged.bindir() / "ordinaut-server";
  const fs::path libdir = staged.libdir();
  REQUIRE(fs::is_regular_file(bin));

  // The binary's run path names the final prefix; point the loader at DESTDIR.
  auto env = staged.runtime_env();
  env.emplace_back("ORDINAUT_EXT_PATHS", "");
  ServerProcess server(bin.string(), {"--port", "0"}, env);
  auto status = parse_json(client(server.port())->Get("/ext/status")->body);
  const std::string builtin_dir = (libdir / "ordinaut" / "extensions").string();
  for (const char* id : {"observability", "webui", "mcp_http", "events_demo"}) {
    CAPTURE(id);
    REQUIRE(status["extensions"].HasMember(id));
    const auto& ext = status["extensions"][id];
    CHECK(str(ext, "source") == "builtin");
    CHECK(str(ext, "path").rfind(builtin_dir, 0) == 0);
    auto health = client(server.port())->Get(("/ext/" + std::string(id) + "/health").c_str());
    REQUIRE(health);
    CHECK(health->status == 200);
  }
  CHECK(status["discovery_errors"].Size() == 0);
  // webui's static/ was installed beside its module and is served from there.
  auto page = client(server.port())->Get("/ext/webui/");
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK(page->body == read_text(fs::path(env_or_throw("ORDINAUT_SOURCE_ROOT")) / "lib/extensions/webui/static/index.html"));
}
