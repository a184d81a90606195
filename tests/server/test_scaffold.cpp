// The scaffold round trip, as an extension author meets it: install the
// library into a temporary DESTDIR, run the installed ordinaut-new-extension,
// build and test the project it writes against the staged library (meson +
// pkg-config), then load the built module in the staged ordinaut-server and
// call its route and its tool over HTTP.
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "staged_install.hpp"

using namespace server_test;
namespace fs = std::filesystem;

namespace {

struct Run {
  ExitStatus status;
  std::string out;
  std::string err;
};

/// Runs a program with extra environment variables (through env(1)); its
/// output lands in `logs`/`name`.{out,err}.
Run run_logged(const fs::path& logs, const std::string& name, const std::string& program,
               const std::vector<std::string>& args, const std::vector<std::pair<std::string, std::string>>& env,
               std::chrono::milliseconds timeout) {
  std::vector<std::string> argv;
  for (const auto& [key, value] : env) argv.push_back(key + "=" + value);
  argv.push_back(program);
  argv.insert(argv.end(), args.begin(), args.end());
  const fs::path out = logs / (name + ".out");
  const fs::path err = logs / (name + ".err");
  ExitStatus status = run_to_end("/usr/bin/env", argv, out, err, timeout);
  return {status, read_text(out), read_text(err)};
}

}  // namespace

TEST_CASE("ordinaut-new-extension refuses a bad id and an existing folder, writing nothing") {
  test_support::TempDir work;
  // Usable from the source tree as it is.
  const std::string scaffold = env_or_throw("ORDINAUT_SOURCE_ROOT") + "/tools/ordinaut-new-extension";
  for (const char* bad : {"Shop", "9lives", "my-shop", "", "mcp_http"}) {
    CAPTURE(bad);
    Run r = run_logged(work.path(), "bad", scaffold, {bad, "--dir", (work.path() / "out").string()}, {}, 60s);
    CHECK(r.status.code == 2);
    CHECK(r.err.find("extension id") != std::string::npos);
    CHECK_FALSE(fs::exists(work.path() / "out"));
  }
  fs::create_directories(work.path() / "taken");
  Run r = run_logged(work.path(), "taken", scaffold, {"shop", "--dir", (work.path() / "taken").string()}, {}, 60s);
  CHECK(r.status.code == 2);
  CHECK(r.err.find("already exists") != std::string::npos);
  CHECK(fs::is_empty(work.path() / "taken"));
}

TEST_CASE("a scaffolded extension builds and passes its test against the installed library, and serves") {
  StagedInstall staged;
  test_support::TempDir work;
  const fs::path scaffold = staged.bindir() / "ordinaut-new-extension";
  REQUIRE(fs::is_regular_file(scaffold));
  CHECK((fs::status(scaffold).permissions() & fs::perms::owner_exec) != fs::perms::none);

  const fs::path project = work.path() / "greeter";
  Run made = run_logged(work.path(), "scaffold", scaffold.string(), {"greeter", "--dir", project.string()}, {}, 60s);
  INFO(made.out, made.err);
  REQUIRE(made.status.code == 0);
  for (const char* file : {"extension.json", "greeter.hpp", "greeter.cpp", "greeter_test.cpp", "meson.build",
                           "README.md"}) {
    CHECK(fs::is_regular_file(project / file));
  }

  // Out of the tree: only pkg-config (through the staged ordinaut.pc) links
  // the project to the library.
  const std::string meson = env_or_throw("ORDINAUT_MESON");
  const fs::path build = project / "build";
  const auto env = staged.build_env();
  std::vector<std::string> setup_args = {"setup", build.string(), project.string(), "-Dtests=enabled"};
  // A library built with sanitizers needs its users built with them too (the
  // runtime must come first); the CI's ASan stage installs such a library.
  if (const char* sanitize = std::getenv("ORDINAUT_B_SANITIZE");
      sanitize != nullptr && *sanitize != '\0' && std::string_view(sanitize) != "none") {
    setup_args.push_back(std::string("-Db_sanitize=") + sanitize);
    setup_args.push_back("-Db_lundef=false");
  }
  Run setup = run_logged(work.path(), "setup", meson, setup_args, env, 300s);
  INFO("meson setup:\n", setup.out, setup.err);
  REQUIRE(setup.status.code == 0);
  Run compile = run_logged(work.path(), "compile", meson, {"compile", "-C", build.string(), "-j", "2"}, env, 900s);
  INFO("meson compile:\n", compile.out, compile.err);
  REQUIRE(compile.status.code == 0);
  Run tested = run_logged(work.path(), "test", meson, {"test", "-C", build.string(), "--print-errorlogs"}, env, 300s);
  INFO("meson test:\n", tested.out, tested.err);
  REQUIRE(tested.status.code == 0);
  CHECK(tested.out.find("1/1 greeter") != std::string::npos);  // the test ran, and passed (exit 0)
  REQUIRE(fs::is_regular_file(build / "greeter.so"));
  REQUIRE(fs::is_regular_file(build / "extension.json"));

  // The build folder is an extension folder: the staged server loads it.
  auto server_env = staged.runtime_env();
  server_env.emplace_back("ORDINAUT_EXT_PATHS", "");
  ServerProcess server((staged.bindir() / "ordinaut-server").string(), {"--port", "0", "--ext-path", build.string()},
                       server_env);
  auto hello = client(server.port())->Get("/ext/greeter/hello?name=Ada");
  REQUIRE(hello);
  CHECK(hello->status == 200);
  CHECK(str(parse_json(hello->body), "greeting") == "Hello, Ada!");

  auto invoked = client(server.port())->Post("/ext/mcp_http/invoke", R"({"tool":"ext.greeter.greet","parameters":{"name":"Grace"}})",
                                             "application/json");
  REQUIRE(invoked);
  INFO(invoked->body);
  CHECK(invoked->status == 200);
  auto answer = parse_json(invoked->body);
  REQUIRE(answer.HasMember("result"));
  CHECK(str(answer["result"], "greeting") == "Hello, Grace!");

  auto health = client(server.port())->Get("/ext/greeter/health");
  REQUIRE(health);
  CHECK(health->status == 200);
  auto doc = parse_json(health->body);
  CHECK(str(doc, "status") == "ok");
  REQUIRE(doc["checks"].HasMember("greetings"));
  CHECK(doc["checks"]["greetings"]["served"].GetUint64() == 2);
  CHECK(extension_state(server.port(), "greeter") == "active");
}
