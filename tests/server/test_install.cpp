// After `meson install` the server finds the built-ins with no flag: install
// into a temporary DESTDIR and run the installed binary from there.
#include "../support/support.hpp"
#include "common.hpp"

using namespace server_test;
namespace fs = std::filesystem;

TEST_CASE("the installed ordinaut-server serves the installed built-ins with no flag") {
  test_support::TempDir dest;
  auto install = run_to_end(env_or_throw("ORDINAUT_MESON"),
                            {"install", "-C", env_or_throw("ORDINAUT_BUILD_ROOT"), "--destdir", dest.path().string(),
                             "--no-rebuild", "--quiet"},
                            dest.path() / "install.out", dest.path() / "install.err", 120s);
  INFO(read_text(dest.path() / "install.err"));
  REQUIRE(install.code == 0);
  const fs::path prefix = dest.path() / fs::path(env_or_throw("ORDINAUT_PREFIX")).relative_path();
  const fs::path bin = prefix / env_or_throw("ORDINAUT_BINDIR") / "ordinaut-server";
  const fs::path libdir = prefix / env_or_throw("ORDINAUT_LIBDIR");
  REQUIRE(fs::is_regular_file(bin));

  // The binary's run path names the final prefix; point the loader at DESTDIR.
  ServerProcess server(bin.string(), {"--port", "0"}, {{"LD_LIBRARY_PATH", libdir.string()}, {"ORDINAUT_EXT_PATHS", ""}});
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
