// ExtensionHost: discovery, lazy and eager loading of real modules, refusals,
// capabilities, scopes, dispatch, status and metrics.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <latch>
#include <set>
#include <thread>

#include <ordinaut/host.hpp>

#include "host_support.hpp"

using ordinaut::Capability;
using ordinaut::CapabilitySet;
using ordinaut::ExtensionHost;
using ordinaut::Json;
using namespace test_support;

namespace {

const std::string kGood = manifest_json("good", "good_ext.so", R"(["ROUTES","TOOLS"])");

// A linked-in extension whose behaviour the test chooses.
struct Probe final : ordinaut::Extension {
  std::string id = "probe";
  CapabilitySet requested{Capability::ROUTES};
  std::function<std::optional<ordinaut::Router>(ordinaut::SetupContext&)> on_setup;
  std::function<Json()> checks;
  std::function<void()> on_stop;

  ordinaut::ExtensionInfo info() const override { return {id, "Probe", "0.1.0", "test probe"}; }
  CapabilitySet requested_capabilities() const override { return requested; }
  std::optional<ordinaut::Router> setup(ordinaut::SetupContext& c) override {
    if (on_setup) return on_setup(c);
    ordinaut::Router r;
    r.get("/", [](ordinaut::Request&) { return ordinaut::Response::text(200, "probe"); });
    return r;
  }
  Json health_checks() const override { return checks ? checks() : ordinaut::json::object(); }
  void on_shutdown() override {
    if (on_stop) on_stop();
  }
};

ordinaut::ExtensionFactory probe_factory(std::function<void(Probe&)> configure) {
  return [configure] {
    auto p = std::make_unique<Probe>();
    configure(*p);
    return std::unique_ptr<ordinaut::Extension>(std::move(p));
  };
}

// A host over one temporary folder of extensions, with captured logs.
struct Fixture {
  TempDir root;
  LogCapture logs;
  std::unique_ptr<ExtensionHost> host;

  /// `prepare` may change the options, `before_start` add linked extensions.
  ExtensionHost& start(const std::function<void(ordinaut::HostOptions&)>& prepare = {},
                       const std::function<void(ExtensionHost&)>& before_start = {}) {
    auto options = host_options(logs, {root.path()});
    if (prepare) prepare(options);
    host = std::make_unique<ExtensionHost>(std::move(options));
    if (before_start) before_start(*host);
    REQUIRE(host->start().ok());
    return *host;
  }
};

std::string last_error(ExtensionHost& host, const std::string& id) {
  Json s = extension_status(host, id);
  return s["last_error"].IsString() ? str(s["last_error"]) : "";
}

}  // namespace

TEST_CASE("host: a lazy extension stays discovered until its first request, a POST served with its body") {
  Fixture f;
  make_extension(f.root.path(), "good", kGood, "good");
  const int before = good_constructed();
  ExtensionHost& host = f.start();
  LogCapture& logs = f.logs;

  CHECK(state_of(host, "good") == "discovered");
  CHECK(extension_status(host, "good")["loaded_ms"].IsNull());
  CHECK(good_constructed() == before);
  CHECK(logs.count("extension_loaded") == 0);

  const std::string body = R"({"first":"request","n":[1,2,3]})";
  auto r = send(host, "POST", "/ext/good/echo", body, {{"Content-Type", "application/json"}});
  CHECK(r.status == 200);  // served, not redirected
  CHECK(r.body == body);
  CHECK(r.headers.get("Content-Type") == "application/json");
  CHECK(r.headers.get("Location").empty());
  CHECK(state_of(host, "good") == "active");
  CHECK(extension_status(host, "good")["loaded_ms"].IsNumber());
  CHECK(good_constructed() == before + 1);
  CHECK(logs.count("extension_loaded", "good") == 1);

  auto again = send(host, "POST", "/ext/good/echo", "second");
  CHECK(again.body == "second");
  CHECK(good_constructed() == before + 1);
}

TEST_CASE("host: 20 concurrent first requests load the extension once and are all served") {
  Fixture f;
  make_extension(f.root.path(), "good", kGood, "good");
  const int before = good_constructed();
  ExtensionHost& host = f.start();
  LogCapture& logs = f.logs;

  constexpr int kThreads = 20;
  std::latch go(kThreads);
  std::vector<ordinaut::Response> responses(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      go.arrive_and_wait();
      responses[static_cast<std::size_t>(i)] = send(host, "POST", "/ext/good/echo", "body-" + std::to_string(i));
    });
  }
  for (auto& t : threads) t.join();

  std::string instance(responses[0].headers.get("X-Instance"));
  CHECK_FALSE(instance.empty());
  for (int i = 0; i < kThreads; ++i) {
    CAPTURE(i);
    const auto& r = responses[static_cast<std::size_t>(i)];
    CHECK(r.status == 200);
    CHECK(r.body == "body-" + std::to_string(i));
    CHECK(r.headers.get("X-Instance") == instance);
  }
  CHECK(good_constructed() == before + 1);
  CHECK(logs.count("extension_loaded", "good") == 1);
  Json metrics = ordinaut::json::copy(extension_status(host, "good")["metrics"]);
  CHECK(metrics["requests"].GetUint64() == kThreads);
}

TEST_CASE("host: an eager extension loads at start") {
  Fixture f;
  make_extension(f.root.path(), "good", manifest_json("good", "good_ext.so", R"(["ROUTES"])", R"("eager":true)"),
                 "good");
  const int before = good_constructed();
  ExtensionHost& host = f.start();
  LogCapture& logs = f.logs;
  CHECK(state_of(host, "good") == "active");
  CHECK(good_constructed() == before + 1);
  CHECK(logs.count("extension_loaded", "good") == 1);
  CHECK(extension_status(host, "good")["eager"].GetBool());
}

TEST_CASE("host: an ABI mismatch is refused at discovery naming both versions, shown in /ext/status") {
  Fixture f;
  make_extension(f.root.path(), "abi999", manifest_json("abi999", "abi999_ext.so", R"(["ROUTES"])"), "abi999");
  ExtensionHost& host = f.start();
  LogCapture& logs = f.logs;
  CHECK(state_of(host, "abi999") == "error");  // lazy, yet known bad from its ABI note

  auto r = send(host, "GET", "/ext/abi999/");
  Json err = expect_error(r, 503, "unavailable");
  const std::string message = str(err["message"]);
  CHECK(message.find("ABI version 999") != std::string::npos);
  CHECK(message.find("ABI version " + std::to_string(ORDINAUT_ABI_VERSION)) != std::string::npos);
  CHECK(str(err["details"]["state"]) == "error");

  auto r2 = send(host, "GET", "/ext/status");
  REQUIRE(r2.status == 200);
  Json status = parse_json(r2.body);
  const auto& x = status["extensions"]["abi999"];
  CHECK(str(x["state"]) == "error");
  CHECK(str(x["error_phase"]) == "discovery");
  CHECK(str(x["last_error"]).find("ABI version 999") != std::string::npos);
  CHECK(str(x["last_error"]).find("ABI version 1") != std::string::npos);
  CHECK(status["failed_extensions"].GetUint64() == 1);
  bool audited = false;
  for (auto& a : logs.audits()) {
    if (a.event == "extension_refused" && a.extension == "abi999" && a.fields_json.find("abi_mismatch") != std::string::npos)
      audited = true;
  }
  CHECK(audited);
}

TEST_CASE("host: an eager ABI mismatch is in /ext/status right after start") {
  Fixture f;
  make_extension(f.root.path(), "abi999",
                 manifest_json("abi999", "abi999_ext.so", R"(["ROUTES"])", R"("eager":true)"), "abi999");
  ExtensionHost& host = f.start();  // a broken extension does not stop the host
  CHECK(state_of(host, "abi999") == "error");
  CHECK(last_error(host, "abi999").find("999") != std::string::npos);
}

TEST_CASE("host: a module without factory is refused with the reason") {
  Fixture f;
  make_extension(f.root.path(), "no_factory", manifest_json("no_factory", "no_factory_ext.so", R"(["ROUTES"])"),
                 "no_factory");
  ExtensionHost& host = f.start();
  auto r = send(host, "GET", "/ext/no_factory/x");
  Json err = expect_error(r, 503, "unavailable");
  CHECK(str(err["message"]).find("ordinaut_get_extension") != std::string::npos);
  CHECK(state_of(host, "no_factory") == "error");
  CHECK(last_error(host, "no_factory").find("no factory") != std::string::npos);
  CHECK(host.load("no_factory").error().code == "load_failed");
}

TEST_CASE("host: a missing module file is refused with its path") {
  Fixture f;
  auto dir = make_extension(f.root.path(), "ghost", manifest_json("ghost", "ghost.so", R"(["ROUTES"])"));
  ExtensionHost& host = f.start();
  CHECK(state_of(host, "ghost") == "discovered");
  auto loaded = host.load("ghost");
  REQUIRE_FALSE(loaded.ok());
  CHECK(loaded.error().message.find((dir / "ghost.so").string()) != std::string::npos);
  CHECK(loaded.error().message.find("does not exist") != std::string::npos);
  CHECK(state_of(host, "ghost") == "error");
  CHECK(last_error(host, "ghost").find("does not exist") != std::string::npos);
  expect_error(send(host, "GET", "/ext/ghost/"), 503, "unavailable");
}

TEST_CASE("host: a module symlink pointing outside its folder is refused before dlopen runs its constructors") {
  ScopedEnv marker("ORDINAUT_TEST_MARKER_LOADED", std::nullopt);
  Fixture f;
  TempDir elsewhere;
  const auto outside = elsewhere.path() / "marker_ext.so";
  place_module(test_module("marker"), outside);
  auto dir = make_extension(f.root.path(), "marker", manifest_json("marker", "marker_ext.so", R"(["ROUTES"])"));
  std::filesystem::create_symlink(outside, dir / "marker_ext.so");
  ExtensionHost& host = f.start();

  auto r = send(host, "GET", "/ext/marker/");
  Json err = expect_error(r, 503, "unavailable");
  const std::string message = str(err["message"]);
  CHECK(message.find("outside the extension folder") != std::string::npos);
  CHECK(message.find(std::filesystem::canonical(outside).string()) != std::string::npos);
  CHECK(state_of(host, "marker") == "error");
  CHECK(last_error(host, "marker").find("outside the extension folder") != std::string::npos);
  bool audited = false;
  for (auto& a : f.logs.audits()) {
    if (a.event == "extension_refused" && a.extension == "marker" &&
        a.fields_json.find("module_outside_folder") != std::string::npos) {
      audited = true;
    }
  }
  CHECK(audited);
  CHECK(std::getenv("ORDINAUT_TEST_MARKER_LOADED") == nullptr);  // its static initializer never ran

  // The same module as a file inside its folder loads, and its mark is set:
  // the check above could have seen it.
  std::filesystem::remove(dir / "marker_ext.so");
  place_module(outside, dir / "marker_ext.so");
  REQUIRE(host.enable("marker").ok());
  auto ok = send(host, "GET", "/ext/marker/");
  CHECK(ok.status == 200);
  CHECK(ok.body == "marked");
  CHECK(std::getenv("ORDINAUT_TEST_MARKER_LOADED") != nullptr);
}

TEST_CASE("host: a module whose info() id or version differs from the manifest is refused") {
  Fixture f;
  // mismatch_ext.so reports id "mismatch", version 2.0.0.
  make_extension(f.root.path(), "mismatch", manifest_json("mismatch", "mismatch_ext.so", R"(["ROUTES"])"), "mismatch");
  make_extension(f.root.path(), "impostor",
                 manifest_json("impostor", "mismatch_ext.so", R"(["ROUTES"])", {}, "2.0.0"), "mismatch");
  ExtensionHost& host = f.start();
  LogCapture& logs = f.logs;

  auto v = send(host, "GET", "/ext/mismatch/");
  expect_error(v, 503, "unavailable");
  CHECK(v.body.find("should never be served") == std::string::npos);
  CHECK(last_error(host, "mismatch") == "info().version is '2.0.0' but the manifest says '1.0.0'");

  auto i = send(host, "GET", "/ext/impostor/");
  expect_error(i, 503, "unavailable");
  CHECK(last_error(host, "impostor") == "info().id is 'mismatch' but the manifest says 'impostor'");
  CHECK(logs.count("extension_refused", "impostor") == 1);
}

TEST_CASE("host: duplicate ids keep the first and name both paths") {
  TempDir first_root, second_root;
  LogCapture logs;
  auto first = make_extension(first_root.path(), "good", kGood, "good");
  auto second = make_extension(second_root.path(), "good_copy", kGood, "good");
  ExtensionHost host(host_options(logs, {first_root.path(), second_root.path()}));
  REQUIRE(host.start().ok());

  Json status = host.status();
  CHECK(status["total_extensions"].GetUint64() == 1);
  CHECK(str(status["extensions"]["good"]["path"]) == (first / "extension.json").string());
  REQUIRE(status["discovery_errors"].Size() == 1);
  const auto& e = status["discovery_errors"][0];
  CHECK(str(e["file"]) == (second / "extension.json").string());
  const std::string message = str(e["error"]);
  CHECK(message.find("duplicate extension id 'good'") != std::string::npos);
  CHECK(message.find((first / "extension.json").string()) != std::string::npos);
  CHECK(message.find((second / "extension.json").string()) != std::string::npos);
  CHECK(logs.count("extension_refused") == 1);
}

TEST_CASE("host: a disabled extension is listed but never loaded") {
  Fixture f;
  make_extension(f.root.path(), "good", manifest_json("good", "good_ext.so", R"(["ROUTES"])", R"("enabled":false)"),
                 "good");
  const int before = good_constructed();
  ExtensionHost& host = f.start();
  CHECK(state_of(host, "good") == "disabled");
  CHECK_FALSE(extension_status(host, "good")["enabled"].GetBool());
  Json err = expect_error(send(host, "GET", "/ext/good/instance"), 404, "not_found");
  CHECK(str(err["message"]).find("disabled") != std::string::npos);
  CHECK(host.load("good").error().code == "disabled");
  CHECK(state_of(host, "good") == "disabled");
  CHECK(good_constructed() == before);
}

TEST_CASE("host: ORDINAUT_EXT_PATHS takes folders of folders and single folders") {
  CleanEnvironment clean;
  TempDir many, single, option_dir;
  LogCapture logs;
  make_extension(many.path(), "b_mismatch", manifest_json("mismatch", "mismatch_ext.so", "[]"), "mismatch");
  make_extension(many.path(), "a_good", kGood, "good");
  write_file(many.path() / "not_an_extension" / "README", "ignored");
  make_extension(single.path(), ".", manifest_json("abi999", "abi999_ext.so", "[]"), "abi999");
  make_extension(option_dir.path(), "nf", manifest_json("no_factory", "no_factory_ext.so", "[]"), "no_factory");
  const auto missing = many.path() / "does-not-exist";

  ScopedEnv paths("ORDINAUT_EXT_PATHS",
                  many.path().string() + ":" + single.path().string() + "::" + missing.string());
  auto options = host_options(logs, {option_dir.path()});
  options.read_environment = true;
  ExtensionHost host(std::move(options));
  REQUIRE(host.start().ok());

  Json status = host.status();
  CHECK(status["total_extensions"].GetUint64() == 4);
  for (const char* id : {"good", "mismatch", "abi999", "no_factory"}) {
    CAPTURE(id);
    REQUIRE(status["extensions"].HasMember(id));
    // abi999's ABI note is read at discovery: it is in error from the start.
    CHECK(str(status["extensions"][id]["state"]) == (std::string(id) == "abi999" ? "error" : "discovered"));
    CHECK(str(status["extensions"][id]["source"]) == "path");
  }
  CHECK(strings(status["discovery_sources"]) ==
        std::vector<std::string>{"path:" + many.path().string(), "path:" + single.path().string(),
                                 "path:" + missing.string(), "path:" + option_dir.path().string()});
  REQUIRE(status["discovery_errors"].Size() == 2);
  CHECK(str(status["discovery_errors"][0]["file"]) == (single.path() / "extension.json").string());
  CHECK(str(status["discovery_errors"][0]["error"]).find("ABI version 999") != std::string::npos);
  CHECK(str(status["discovery_errors"][1]["file"]) == missing.string());
  CHECK(str(status["discovery_errors"][1]["error"]).find("does not exist") != std::string::npos);
  // Sorted folder order: a_good before b_mismatch.
  auto it = status["extensions"].MemberBegin();
  CHECK(std::string(it->name.GetString()) == "good");
}

TEST_CASE("host: the build folder of the test modules is itself a folder of extensions") {
  LogCapture logs;
  ExtensionHost host(host_options(logs, {ORDINAUT_TEST_EXT_DIR}));
  REQUIRE(host.start().ok());
  Json status = host.status();
  CHECK(status["total_extensions"].GetUint64() == 5);  // good, no_factory, abi999, mismatch, marker
  REQUIRE(status["discovery_errors"].Size() == 1);  // abi999's ABI note
  CHECK(str(status["discovery_errors"][0]["error"]).find("ABI version 999") != std::string::npos);
  auto r = send(host, "GET", "/ext/good/items/7");
  CHECK(r.status == 200);
  CHECK(r.body == R"({"id":"7"})");
}

TEST_CASE("host: a bad manifest is a discovery error naming file, pointer and reason; others still load") {
  Fixture f;
  make_extension(f.root.path(), "good", kGood, "good");
  auto bad = make_extension(f.root.path(), "bad",
                            R"({"id":"bad one","name":"B","version":"1.0.0","module":"b.so","grants":["ROUTES"]})");
  auto broken = make_extension(f.root.path(), "broken", "{\"id\": \"broken\",\n  \"name\": }");
  ExtensionHost& host = f.start();
  Json status = host.status();
  CHECK(status["total_extensions"].GetUint64() == 1);
  REQUIRE(status["discovery_errors"].Size() == 2);
  std::map<std::string, std::string> errors;
  for (auto& e : status["discovery_errors"].GetArray()) errors[str(e["file"])] = str(e["error"]);
  const std::string bad_error = errors[(bad / "extension.json").string()];
  CHECK(bad_error.find("/id: ") == 0);
  CHECK(bad_error.find("lower-case letter") != std::string::npos);
  CHECK(errors[(broken / "extension.json").string()].find("line 2, column 11") != std::string::npos);
  CHECK(send(host, "GET", "/ext/good/instance").status == 200);
}

TEST_CASE("host: an extension.json that is a folder, a FIFO or a dangling link is a discovery error") {
  Fixture f;
  make_extension(f.root.path(), "good", kGood, "good");
  std::filesystem::create_directories(f.root.path() / "folder" / "extension.json");
  std::filesystem::create_directories(f.root.path() / "fifo");
  REQUIRE(::mkfifo((f.root.path() / "fifo" / "extension.json").c_str(), 0600) == 0);
  std::filesystem::create_directories(f.root.path() / "dangling");
  std::filesystem::create_symlink(f.root.path() / "nowhere.json", f.root.path() / "dangling" / "extension.json");
  std::filesystem::create_directories(f.root.path() / "empty");  // no extension.json at all: not an error
  ExtensionHost& host = f.start();  // returns: the FIFO is never opened
  Json status = host.status();
  CHECK(status["total_extensions"].GetUint64() == 1);
  std::set<std::string> files;
  for (auto& e : status["discovery_errors"].GetArray()) {
    CHECK(str(e["error"]).find("not a regular file") != std::string::npos);
    files.insert(str(e["file"]));
  }
  CHECK(files == std::set<std::string>{(f.root.path() / "dangling" / "extension.json").string(),
                                       (f.root.path() / "fifo" / "extension.json").string(),
                                       (f.root.path() / "folder" / "extension.json").string()});
  CHECK(send(host, "GET", "/ext/good/instance").status == 200);
}

TEST_CASE("host: malformed ORDINAUT_EXT_ENTRY_GRANTS / _EAGER / _REQUIRE_SCOPES fail start()") {
  struct Case {
    const char* variable;
    const char* value;
    const char* text;
  };
  const Case cases[] = {
      {"ORDINAUT_EXT_ENTRY_GRANTS", "{not json", "ORDINAUT_EXT_ENTRY_GRANTS is not valid JSON: line 1, column 2"},
      {"ORDINAUT_EXT_ENTRY_GRANTS", R"(["ROUTES"])", "must be a JSON object"},
      {"ORDINAUT_EXT_ENTRY_GRANTS", R"({"probe":"ROUTES"})", "/probe: expected an array"},
      {"ORDINAUT_EXT_ENTRY_GRANTS", R"({"probe":["ROUTES","NETWORK"]})", "/probe/1: \"NETWORK\" is not a capability"},
      {"ORDINAUT_EXT_ENTRY_GRANTS", R"({"probe":[1]})", "/probe/0: 1 is not a capability"},
      {"ORDINAUT_EXT_ENTRY_EAGER", "{\"probe\": tru}", "ORDINAUT_EXT_ENTRY_EAGER is not valid JSON"},
      {"ORDINAUT_EXT_ENTRY_EAGER", "true", "must be a JSON object"},
      {"ORDINAUT_EXT_ENTRY_EAGER", R"({"probe":"yes"})", "/probe: expected true or false, got string"},
      {"ORDINAUT_REQUIRE_SCOPES", "maybe", "ORDINAUT_REQUIRE_SCOPES=\"maybe\" is not a boolean"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.variable);
    CAPTURE(c.value);
    CleanEnvironment clean;
    ScopedEnv bad(c.variable, std::string(c.value));
    LogCapture logs;
    auto options = host_options(logs);
    options.read_environment = true;
    bool factory_called = false;
    ExtensionHost host(std::move(options));
    host.add_linked("probe", probe_factory([&](Probe&) { factory_called = true; }), std::nullopt, true);
    auto started = host.start();
    REQUIRE_FALSE(started.ok());
    CHECK(started.error().code == "invalid_configuration");
    CHECK_MESSAGE(started.error().message.find(c.text) != std::string::npos, started.error().message);
    CHECK(logs.count("invalid_configuration") == 1);
    CHECK_FALSE(factory_called);  // nothing was loaded
    CHECK(host.status()["total_extensions"].GetUint64() == 0);
  }
}

TEST_CASE("host: entry grants and eagerness for add_linked come from the environment") {
  CleanEnvironment clean;
  ScopedEnv grants("ORDINAUT_EXT_ENTRY_GRANTS", std::string(R"({"probe":["ROUTES"],"other":["TOOLS"]})"));
  ScopedEnv eager("ORDINAUT_EXT_ENTRY_EAGER", std::string(R"({"probe":true})"));
  LogCapture logs;
  auto options = host_options(logs);
  options.read_environment = true;
  ExtensionHost host(std::move(options));
  host.add_linked("probe", probe_factory([](Probe& p) { p.requested = {Capability::ROUTES, Capability::TOOLS}; }));
  REQUIRE(host.start().ok());
  CHECK(state_of(host, "probe") == "active");  // eager from the environment
  Json caps = ordinaut::json::copy(extension_status(host, "probe")["capabilities"]);
  CHECK(strings(caps["approved"]) == std::vector<std::string>{"ROUTES"});
  CHECK(strings(caps["granted"]) == std::vector<std::string>{"ROUTES"});
  CHECK(strings(caps["denied"]) == std::vector<std::string>{"TOOLS"});
  CHECK(str(extension_status(host, "probe")["source"]) == "linked");
  CHECK(send(host, "GET", "/ext/probe/").body == "probe");
}

TEST_CASE("host: deny by default, one audit record per denied capability, nothing mounted without ROUTES") {
  Fixture f;
  make_extension(f.root.path(), "good", manifest_json("good", "good_ext.so", ""), "good");  // no grants
  ExtensionHost& host = f.start();
  LogCapture& logs = f.logs;
  REQUIRE(host.load("good").ok());  // it loads, with nothing granted

  Json caps = ordinaut::json::copy(extension_status(host, "good")["capabilities"]);
  CHECK(strings(caps["approved"]).empty());
  CHECK(strings(caps["requested"]) == std::vector<std::string>{"ROUTES", "TOOLS"});
  CHECK(strings(caps["granted"]).empty());
  CHECK(strings(caps["denied"]) == std::vector<std::string>{"ROUTES", "TOOLS"});

  auto audits = logs.audits();
  REQUIRE(audits.size() == 2);
  CHECK(audits[0].event == "capability_denied");
  CHECK(audits[0].extension == "good");
  CHECK(audits[0].fields_json.find(R"("capability":"ROUTES")") != std::string::npos);
  CHECK(audits[0].message.find("'good'") != std::string::npos);
  CHECK(audits[1].event == "capability_denied");
  CHECK(audits[1].extension == "good");
  CHECK(audits[1].fields_json.find(R"("capability":"TOOLS")") != std::string::npos);
  // The audit line as written by the default sink names both.
  const std::string line = ordinaut::format_log_json(audits[1]);
  CHECK(line.find(R"("audit":true)") != std::string::npos);
  CHECK(line.find(R"("extension":"good")") != std::string::npos);

  Json err = expect_error(send(host, "GET", "/ext/good/instance"), 404, "not_found");
  CHECK(str(err["details"]["missing_capability"]) == "ROUTES");
  CHECK_FALSE(host.tools().get("ext.good.add"));
}

TEST_CASE("host: ROUTES without TOOLS mounts routes and registers no tool") {
  Fixture f;
  make_extension(f.root.path(), "good", manifest_json("good", "good_ext.so", R"(["ROUTES"])"), "good");
  ExtensionHost& host = f.start();
  LogCapture& logs = f.logs;
  CHECK(send(host, "GET", "/ext/good/instance").status == 200);
  CHECK_FALSE(host.tools().get("ext.good.add"));
  auto audits = logs.audits();
  REQUIRE(audits.size() == 1);
  CHECK(audits[0].fields_json.find(R"("capability":"TOOLS")") != std::string::npos);
}

TEST_CASE("host: asking for a handle that was not granted throws CapabilityError and audits") {
  LogCapture logs;
  ExtensionHost host(host_options(logs));
  std::vector<std::string> denied;
  host.add_linked("probe", probe_factory([&](Probe& p) {
                    p.requested = {Capability::ROUTES, Capability::TOOLS};
                    p.on_setup = [&](ordinaut::SetupContext& c) -> std::optional<ordinaut::Router> {
                      CHECK(c.granted(Capability::ROUTES));
                      CHECK_FALSE(c.granted(Capability::TOOLS));
                      CHECK(c.mount_path() == "/ext/probe");
                      CHECK(c.extension_id() == "probe");
                      CHECK(c.tools().list().empty());  // read-only view is always there
                      auto attempt = [&](auto&& fn) {
                        try {
                          fn();
                        } catch (const ordinaut::CapabilityError& e) {
                          CHECK(e.extension_id() == "probe");
                          denied.emplace_back(ordinaut::to_string(e.capability()));
                        }
                      };
                      attempt([&] { (void)c.tool_registrar(); });
                      attempt([&] { (void)c.events_publisher(); });
                      attempt([&] { (void)c.events_subscriber(); });
                      attempt([&] { (void)c.background(); });
                      attempt([&] { (void)c.static_dir(); });
                      return std::nullopt;
                    };
                  }),
                  CapabilitySet{Capability::ROUTES});
  REQUIRE(host.start().ok());
  REQUIRE(host.load("probe").ok());
  CHECK(denied == std::vector<std::string>{"TOOLS", "EVENTS_PUB", "EVENTS_SUB", "BACKGROUND_TASKS", "STATIC"});
  std::vector<std::string> audited;
  for (const auto& a : logs.audits()) {
    CHECK(a.extension == "probe");
    CHECK(a.event == "capability_denied");
    audited.push_back(a.fields_json);
  }
  // One at grant time (TOOLS requested, not approved) + one per refused handle.
  REQUIRE(audited.size() == 6);
  CHECK(audited[1].find(R"("capability":"TOOLS")") != std::string::npos);
  CHECK(audited[5].find(R"("capability":"STATIC")") != std::string::npos);
}

TEST_CASE("host: an uncaught CapabilityError in setup() fails the extension with the reason") {
  LogCapture logs;
  ExtensionHost host(host_options(logs));
  host.add_linked("probe", probe_factory([](Probe& p) {
                    p.on_setup = [](ordinaut::SetupContext& c) -> std::optional<ordinaut::Router> {
                      c.tool_registrar();
                      return std::nullopt;
                    };
                  }),
                  CapabilitySet{Capability::ROUTES});
  REQUIRE(host.start().ok());
  auto r = host.load("probe");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("was not granted capability TOOLS") != std::string::npos);
  Json s = extension_status(host, "probe");
  CHECK(str(s["state"]) == "error");
  CHECK(str(s["error_phase"]) == "setup");
  CHECK(logs.count("capability_denied", "probe") == 1);
}

TEST_CASE("host: a failing setup() releases the tools it registered") {
  LogCapture logs;
  ExtensionHost host(host_options(logs));
  host.add_linked("probe", probe_factory([](Probe& p) {
                    p.requested = {Capability::ROUTES, Capability::TOOLS};
                    p.on_setup = [](ordinaut::SetupContext& c) -> std::optional<ordinaut::Router> {
                      c.tool_registrar().add({.name = "ext.probe.t",
                                              .title = {},
                                              .description = "d",
                                              .input_schema = R"({"type":"object"})",
                                              .output_schema = {},
                                              .function = [](const ordinaut::JsonValue&, ordinaut::ToolContext&) {
                                                return ordinaut::json::object();
                                              }});
                      throw std::runtime_error("database unreachable");
                    };
                  }),
                  CapabilitySet{Capability::ROUTES, Capability::TOOLS});
  REQUIRE(host.start().ok());
  CHECK_FALSE(host.load("probe").ok());
  CHECK(last_error(host, "probe") == "setup() threw: database unreachable");
  CHECK(host.tools().list().empty());
  expect_error(send(host, "GET", "/ext/probe/"), 503, "unavailable");
}

TEST_CASE("host: with scopes required /ext/{id}/ needs ext:{id}:routes") {
  TempDir root;
  make_extension(root.path(), "good", kGood, "good");
  SUBCASE("option on") {
    LogCapture logs;
    ExtensionHost host([&] {
      auto o = host_options(logs, {root.path()});
      o.require_scopes = true;
      return o;
    }());
    REQUIRE(host.start().ok());
    CHECK(host.require_scopes());
    Json err = expect_error(send(host, "GET", "/ext/good/instance"), 403, "forbidden");
    CHECK(str(err["message"]).find("ext:good:routes") != std::string::npos);
    CHECK(str(err["details"]["required_scope"]) == "ext:good:routes");
    CHECK(state_of(host, "good") == "discovered");  // refused before loading
    expect_error(send(host, "GET", "/ext/good/instance", {}, {{"X-Scopes", "ext:other:routes,ext:good:tools"}}), 403,
                 "forbidden");
    CHECK(send(host, "GET", "/ext/good/instance", {}, {{"X-Scopes", "ext:other:routes, ext:good:routes"}}).status ==
          200);
    CHECK(logs.count("scope_denied", "good") == 2);
  }
  SUBCASE("environment on") {
    CleanEnvironment clean;
    ScopedEnv scopes("ORDINAUT_REQUIRE_SCOPES", std::string("true"));
    LogCapture logs;
    auto options = host_options(logs, {root.path()});
    options.read_environment = true;
    ExtensionHost host(std::move(options));
    REQUIRE(host.start().ok());
    expect_error(send(host, "GET", "/ext/good/instance"), 403, "forbidden");
    CHECK(host.status()["require_scopes"].GetBool());
  }
  SUBCASE("off") {
    LogCapture logs;
    ExtensionHost host(host_options(logs, {root.path()}));
    REQUIRE(host.start().ok());
    CHECK(send(host, "GET", "/ext/good/instance").status == 200);
  }
}

TEST_CASE("host: a custom ScopeResolver decides access and its scopes reach the extension") {
  Fixture f;
  auto& host = f.start(
      [](ordinaut::HostOptions& o) {
        o.require_scopes = true;
        // A verified token in a real host; here a fixed table. X-Scopes is ignored.
        o.scope_resolver = [](const ordinaut::Request& r) -> std::vector<std::string> {
          if (r.header("Authorization") == "Bearer alice") return {"ext:probe:routes", "probe:admin"};
          return {};
        };
      },
      [](ExtensionHost& h) {
        h.add_linked("probe", probe_factory([](Probe& p) {
          p.on_setup = [](ordinaut::SetupContext&) {
            ordinaut::Router r;
            r.get("/whoami", [](ordinaut::Request& req) {
              std::string joined;
              for (const auto& s : req.scopes) joined += s + ";";
              return ordinaut::Response::text(200, joined);
            });
            return r;
          };
        }), ordinaut::CapabilitySet{Capability::ROUTES});
      });
  auto allowed = send(host, "GET", "/ext/probe/whoami", {}, {{"Authorization", "Bearer alice"}});
  CHECK(allowed.status == 200);
  CHECK(allowed.body == "ext:probe:routes;probe:admin;");
  // A client cannot assert scopes the resolver did not give it.
  expect_error(send(host, "GET", "/ext/probe/whoami", {}, {{"X-Scopes", "ext:probe:routes"}}), 403, "forbidden");
}

TEST_CASE("host: unknown extensions and paths outside /ext are 404 with the error shape") {
  LogCapture logs;
  ExtensionHost host(host_options(logs));
  REQUIRE(host.start().ok());
  Json err = expect_error(send(host, "GET", "/ext/nope/anything"), 404, "not_found");
  CHECK(str(err["message"]).find("'nope'") != std::string::npos);
  CHECK(str(err["details"]["extension"]) == "nope");
  expect_error(send(host, "GET", "/ext/"), 404, "not_found");
  expect_error(send(host, "GET", "/other"), 404, "not_found");
  Json quoted = expect_error(send(host, "GET", "/ext/a\"b/x"), 404, "not_found");
  CHECK(str(quoted["details"]["extension"]) == "a\"b");
}

TEST_CASE("host: /ext/status shape and counts") {
  Fixture f;
  make_extension(f.root.path(), "good", kGood, "good");
  make_extension(f.root.path(), "abi999", manifest_json("abi999", "abi999_ext.so", R"(["ROUTES"])"), "abi999");
  make_extension(f.root.path(), "later", manifest_json("later", "later.so", R"(["ROUTES"])"));
  ExtensionHost& host = f.start();
  CHECK(send(host, "GET", "/ext/good/items/1").status == 200);
  CHECK(send(host, "GET", "/ext/abi999/").status == 503);

  auto r = send(host, "GET", "/ext/status");
  REQUIRE(r.status == 200);
  CHECK(r.headers.get("Content-Type") == "application/json");
  Json s = parse_json(r.body);
  CHECK(s["total_extensions"].GetUint64() == 3);
  CHECK(s["loaded_extensions"].GetUint64() == 1);
  CHECK(s["failed_extensions"].GetUint64() == 1);
  CHECK(strings(s["discovery_sources"]) == std::vector<std::string>{"path:" + f.root.path().string()});
  CHECK(s["discovery_errors"].IsArray());

  const auto& good = s["extensions"]["good"];
  CHECK(str(good["state"]) == "active");
  CHECK(str(good["info"]["id"]) == "good");
  CHECK(str(good["info"]["name"]) == "Good test extension");
  CHECK(str(good["info"]["version"]) == "1.0.0");
  CHECK(good["info"].HasMember("description"));
  CHECK(strings(good["capabilities"]["granted"]) == std::vector<std::string>{"ROUTES", "TOOLS"});
  CHECK(strings(good["grants"]) == std::vector<std::string>{"ROUTES", "TOOLS"});
  CHECK(good["loaded_ms"].IsNumber());
  CHECK(good["loaded_ms"].GetDouble() >= 0);
  CHECK(good["last_error"].IsNull());
  CHECK(str(good["source"]) == "path");
  CHECK(good["metrics"]["requests"].GetUint64() == 1);
  CHECK(good["metrics"]["errors"].GetUint64() == 0);
  CHECK(good["metrics"]["tools"].GetUint64() == 1);
  CHECK(good["metrics"]["routes"].IsArray());

  const auto& later = s["extensions"]["later"];
  CHECK(str(later["state"]) == "discovered");
  CHECK(str(later["info"]["name"]) == "Test later");  // from the manifest until loaded
  CHECK(later["loaded_ms"].IsNull());
  CHECK(later["metrics"]["requests"].GetUint64() == 0);

  auto post = send(host, "POST", "/ext/status");
  expect_error(post, 405, "method_not_allowed");
  CHECK(post.headers.get("Allow") == "GET");
}

TEST_CASE("host: /ext/{id}/health has a default built from state") {
  Fixture f;
  make_extension(f.root.path(), "good", kGood, "good");
  make_extension(f.root.path(), "abi999", manifest_json("abi999", "abi999_ext.so", R"(["ROUTES"])"), "abi999");
  ExtensionHost& host = f.start({}, [](ExtensionHost& h) {
    h.add_linked("probe", probe_factory([](Probe& p) {
                   p.checks = [] {
                     return parse_json(R"({"database":{"status":"down","error":"refused"},"cache":{"status":"ok"}})");
                   };
                 }),
                 CapabilitySet{Capability::ROUTES});
  });

  auto r = send(host, "GET", "/ext/good/health");
  REQUIRE(r.status == 200);
  Json h = parse_json(r.body);
  CHECK(str(h["status"]) == "ok");
  CHECK(str(h["version"]) == "1.0.0");
  CHECK(str(h["timestamp"]).size() == 24);  // 2026-01-01T00:00:00.000Z
  CHECK(str(h["checks"]["extension"]["state"]) == "active");
  CHECK(send(host, "HEAD", "/ext/good/health").status == 200);

  auto p = send(host, "GET", "/ext/probe/health");
  CHECK(p.status == 200);
  Json ph = parse_json(p.body);
  CHECK(str(ph["status"]) == "degraded");
  CHECK(str(ph["checks"]["database"]["status"]) == "down");
  CHECK(str(ph["checks"]["cache"]["status"]) == "ok");

  // A failed extension still answers its health URL with the health shape.
  auto bad = send(host, "GET", "/ext/abi999/health");
  CHECK(bad.status == 503);
  Json bh = parse_json(bad.body);
  CHECK(str(bh["status"]) == "unavailable");
  CHECK(str(bh["checks"]["extension"]["state"]) == "error");
}

TEST_CASE("host: an extension's health check cannot take a name the host uses") {
  Fixture f;
  ExtensionHost& host = f.start({}, [](ExtensionHost& h) {
    h.add_linked("probe", probe_factory([](Probe& p) {
                   p.checks = [] {
                     return parse_json(R"({"extension":{"status":"ok","mine":1},"events":{"status":"ok"},)"
                                       R"("task:fake":{"status":"ok"},"custom:events":{"status":"ok"},)"
                                       R"("health_checks":{"status":"ok"},"db":{"status":"ok"}})");
                   };
                 }),
                 CapabilitySet{Capability::ROUTES});
    h.add_linked("twice", probe_factory([](Probe& p) {
                   p.id = "twice";
                   p.checks = [] {
                     Json doc = ordinaut::json::object();
                     auto& a = doc.GetAllocator();
                     for (int i = 0; i < 2; ++i) {
                       ordinaut::JsonValue c(rapidjson::kObjectType);
                       c.AddMember("status", "ok", a);
                       doc.AddMember("db", c, a);  // the same name twice
                     }
                     return doc;
                   };
                 }),
                 CapabilitySet{Capability::ROUTES});
  });

  auto r = send(host, "GET", "/ext/probe/health");
  REQUIRE(r.status == 200);
  // The host's "extension" check appears once; the extension's is renamed.
  CHECK(r.body.find(R"("extension":)") == r.body.rfind(R"("extension":)"));
  Json h = parse_json(r.body);
  CHECK(str(h["status"]) == "ok");
  CHECK(str(h["checks"]["extension"]["state"]) == "active");
  CHECK(h["checks"]["custom:extension"]["mine"].GetInt() == 1);
  CHECK(h["checks"].HasMember("custom:events"));
  CHECK(h["checks"].HasMember("custom:task:fake"));
  CHECK(h["checks"].HasMember("custom:custom:events"));
  CHECK(h["checks"].HasMember("custom:health_checks"));
  CHECK(h["checks"].HasMember("db"));
  CHECK_FALSE(h["checks"].HasMember("events"));  // probe has no event grant: no host check of that name

  auto t = send(host, "GET", "/ext/twice/health");
  REQUIRE(t.status == 200);
  Json th = parse_json(t.body);
  CHECK(str(th["status"]) == "degraded");
  CHECK(th["checks"]["db"].IsObject());
  CHECK(str(th["checks"]["health_checks"]["error"]).find("named a check twice: db") != std::string::npos);
  CHECK(t.body.find(R"("db":)") == t.body.rfind(R"("db":)"));
}

TEST_CASE("host: a throwing handler gives 500, the extension keeps serving, metrics per route") {
  Fixture f;
  make_extension(f.root.path(), "good", kGood, "good");
  ExtensionHost& host = f.start();
  LogCapture& logs = f.logs;

  Json err = expect_error(send(host, "GET", "/ext/good/boom"), 500, "internal_error");
  CHECK(str(err["message"]).find("the handler failed") == std::string::npos);  // internals stay in the log
  CHECK(logs.count("handler_failed", "good") == 1);
  for (auto& rec : logs.records()) {
    if (rec.event == "handler_failed") CHECK(rec.message.find("boom: the handler failed") != std::string::npos);
  }
  CHECK(send(host, "GET", "/ext/good/items/1").status == 200);
  CHECK(send(host, "GET", "/ext/good/items/2").status == 200);
  CHECK(send(host, "GET", "/ext/good/items/3").status == 200);
  CHECK(send(host, "GET", "/ext/good/nothing").status == 404);
  CHECK(state_of(host, "good") == "active");
  CHECK(last_error(host, "good").find("boom") != std::string::npos);

  Json metrics = ordinaut::json::copy(extension_status(host, "good")["metrics"]);
  CHECK(metrics["requests"].GetUint64() == 5);
  CHECK(metrics["errors"].GetUint64() == 1);
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> routes;
  for (auto& r : metrics["routes"].GetArray()) {
    routes[str(r["method"]) + " " + str(r["route"])] = {r["requests"].GetUint64(), r["errors"].GetUint64()};
  }
  CHECK(routes["GET /boom"] == std::pair<std::uint64_t, std::uint64_t>{1, 1});
  CHECK(routes["GET /items/{id}"] == std::pair<std::uint64_t, std::uint64_t>{3, 0});  // template, not URL
  CHECK(routes["* (unrouted)"] == std::pair<std::uint64_t, std::uint64_t>{1, 0});
  CHECK(routes.count("POST /echo") == 0);

  for (const auto& snap : host.snapshot()) {
    if (snap.id != "good") continue;
    CHECK(snap.requests == 5);
    CHECK(snap.errors == 1);
    for (const auto& rm : snap.routes) {
      if (rm.route == "/items/{id}") {
        CHECK(rm.status_class[2] == 3);
        CHECK(rm.buckets.size() == ordinaut::latency_buckets().size());
        CHECK(rm.buckets.back() == 3);
      }
    }
  }
}

TEST_CASE("host: request schemas are enforced before the handler (400 with the pointer)") {
  Fixture f;
  make_extension(f.root.path(), "good", kGood, "good");
  ExtensionHost& host = f.start();
  Json err = expect_error(send(host, "POST", "/ext/good/validated", R"({"n":"five"})"), 400, "bad_request");
  CHECK(str(err["details"]["pointer"]) == "/n");
  CHECK(str(err["message"]).find("/n: expected integer, got string") != std::string::npos);
  Json missing = expect_error(send(host, "POST", "/ext/good/validated", "{}"), 400, "bad_request");
  CHECK(str(missing["details"]["pointer"]) == "/n");
  Json not_json = expect_error(send(host, "POST", "/ext/good/validated", "{\"n\":"), 400, "bad_request");
  CHECK(str(not_json["message"]).find("not valid JSON") != std::string::npos);
  // The position is in details too, as numbers, agreeing with the message.
  Json bad_line = expect_error(send(host, "POST", "/ext/good/validated", "{\n  \"n\": ]"), 400, "bad_request");
  CHECK(bad_line["details"]["offset"].GetUint64() == 9);
  CHECK(bad_line["details"]["line"].GetUint64() == 2);
  CHECK(bad_line["details"]["column"].GetUint64() == 8);
  auto ok = send(host, "POST", "/ext/good/validated", R"({"n":5})");
  CHECK(ok.status == 200);
  CHECK(ok.body == R"({"n":5})");
}

TEST_CASE("host: a body over max_body_bytes is 413 and loads nothing") {
  Fixture f;
  make_extension(f.root.path(), "good", kGood, "good");
  ExtensionHost& host = f.start([](ordinaut::HostOptions& o) { o.max_body_bytes = 16; });
  Json err = expect_error(send(host, "POST", "/ext/good/echo", std::string(17, 'x')), 413, "payload_too_large");
  CHECK(err["details"]["limit"].GetUint64() == 16);
  CHECK(state_of(host, "good") == "discovered");
  CHECK(send(host, "POST", "/ext/good/echo", std::string(16, 'x')).status == 200);
}

TEST_CASE("host: routing through the host: params, catch-all, 405, HEAD") {
  Fixture f;
  make_extension(f.root.path(), "good", kGood, "good");
  ExtensionHost& host = f.start();
  CHECK(send(host, "GET", "/ext/good/items/caf%C3%A9").body == R"({"id":"café"})");
  CHECK(send(host, "GET", "/ext/good/files/a/b%20c").body == R"({"path":"a/b c"})");
  expect_error(send(host, "GET", "/ext/good/files/..%2F..%2Fsecret"), 404, "not_found");
  auto put = send(host, "PUT", "/ext/good/echo");
  expect_error(put, 405, "method_not_allowed");
  CHECK(put.headers.get("Allow") == "POST");
  CHECK(send(host, "HEAD", "/ext/good/instance").status == 200);
}

TEST_CASE("host: calling a tool of an unloaded extension loads it") {
  Fixture f;
  make_extension(f.root.path(), "good", kGood, "good");
  ExtensionHost& host = f.start();
  LogCapture& logs = f.logs;
  CHECK(state_of(host, "good") == "discovered");
  CHECK(host.tools().list().empty());  // lazy: not registered yet

  auto r = host.tools().call("ext.good.add", parse_json(R"({"a":2,"b":3})"));
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
  CHECK((*r)["sum"].GetInt64() == 5);
  CHECK(state_of(host, "good") == "active");
  CHECK(logs.count("extension_loaded", "good") == 1);

  auto bad = host.tools().call("ext.good.add", parse_json(R"({"a":"2","b":3})"));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == "invalid_input");
  CHECK(bad.error().pointer == "/a");
  CHECK(host.tools().call("ext.good.nope", parse_json("{}")).error().code == "tool_not_found");
  CHECK(host.tools().call("ext.unknown.x", parse_json("{}")).error().code == "tool_not_found");
}

TEST_CASE("host: shutdown runs on_shutdown in reverse load order and unmounts") {
  LogCapture logs;
  ExtensionHost host(host_options(logs));
  std::vector<std::string> stopped;
  for (std::string id : {"first", "second"}) {
    host.add_linked(id, probe_factory([&, id](Probe& p) {
                      p.id = id;
                      p.on_stop = [&, id] { stopped.push_back(id); };
                    }),
                    CapabilitySet{Capability::ROUTES});
  }
  REQUIRE(host.start().ok());
  CHECK(send(host, "GET", "/ext/second/").status == 200);
  CHECK(send(host, "GET", "/ext/first/").status == 200);
  host.shutdown();
  CHECK(stopped == std::vector<std::string>{"first", "second"});
  CHECK(state_of(host, "first") == "stopped");
  expect_error(send(host, "GET", "/ext/first/"), 503, "unavailable");
  host.shutdown();  // idempotent
  CHECK(stopped.size() == 2);
}

TEST_CASE("host: start() twice is refused") {
  LogCapture logs;
  ExtensionHost host(host_options(logs));
  REQUIRE(host.start().ok());
  auto again = host.start();
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == "already_started");
}
