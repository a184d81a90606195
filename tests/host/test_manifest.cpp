// extension.json parsing and validation: every bad input names the file, the
// JSON pointer and the reason.
#include <doctest/doctest.h>

#include <ordinaut/manifest.hpp>

#include "support.hpp"

using ordinaut::Capability;
using ordinaut::parse_manifest;

namespace {

const std::filesystem::path kFile = "/srv/extensions/demo/extension.json";

// Checks code, file, pointer and that describe() (what operators see) names
// all three parts plus the reason.
void expect_manifest_error(const ordinaut::Result<ordinaut::Manifest>& r, const std::string& code,
                           const std::string& pointer, const std::string& reason) {
  REQUIRE_FALSE(r.ok());
  const ordinaut::Error& e = r.error();
  INFO("describe(): " << e.describe());
  CHECK(e.code == code);
  CHECK(e.file == kFile.string());
  CHECK(e.pointer == pointer);
  const std::string text = e.describe();
  CHECK(text.find(kFile.string()) == 0);
  if (!pointer.empty()) CHECK(text.find(pointer + ": ") != std::string::npos);
  CHECK(text.find(reason) != std::string::npos);
}

std::string fmt_id(const std::string& id) {
  return R"({"id":")" + id + R"(","name":"D","version":"1.0.0","module":"d.so"})";
}

}  // namespace

TEST_CASE("manifest: a valid manifest round-trips every field") {
  auto m = parse_manifest(R"({
    "id": "demo_1", "name": "Demo", "version": "1.2.3-rc.1+build.5",
    "description": "A demo", "module": "lib/demo.so", "enabled": false, "eager": true,
    "grants": ["ROUTES", "EVENTS_SUB", "STATIC"], "x-vendor": {"anything": 1}
  })",
                          kFile);
  REQUIRE_MESSAGE(m.ok(), (m.ok() ? "" : m.error().describe()));
  CHECK(m->id == "demo_1");
  CHECK(m->name == "Demo");
  CHECK(m->version == "1.2.3-rc.1+build.5");
  CHECK(m->description == "A demo");
  CHECK(m->module == "lib/demo.so");
  CHECK(m->enabled == false);
  CHECK(m->eager == true);
  CHECK(m->grants == ordinaut::CapabilitySet{Capability::ROUTES, Capability::EVENTS_SUB, Capability::STATIC});
  CHECK(m->file == kFile);
  CHECK(m->dir == kFile.parent_path());
}

TEST_CASE("manifest: defaults are enabled, lazy, and no grants") {
  auto m = parse_manifest(R"({"id":"d","name":"D","version":"0.0.1","module":"d.so"})", kFile);
  REQUIRE(m.ok());
  CHECK(m->enabled);
  CHECK_FALSE(m->eager);
  CHECK(m->grants.empty());
  CHECK(m->description.empty());
}

TEST_CASE("manifest: invalid JSON names line and column") {
  auto r = parse_manifest("{\n  \"id\": \"demo\",\n  \"name\" \"Demo\"\n}", kFile);
  expect_manifest_error(r, "invalid_json", "", "line 3, column 10");
  CHECK(r.error().message.find("Missing a colon") != std::string::npos);
}

TEST_CASE("manifest: empty file is invalid JSON") {
  auto r = parse_manifest("", kFile);
  expect_manifest_error(r, "invalid_json", "", "line 1, column 1");
}

TEST_CASE("manifest: a missing required field is named by its pointer") {
  auto r = parse_manifest(R"({"name":"Demo","version":"1.0.0","module":"d.so"})", kFile);
  expect_manifest_error(r, "invalid_manifest", "/id", "required property \"id\" is missing");
}

TEST_CASE("manifest: missing module is named too") {
  auto r = parse_manifest(R"({"id":"d","name":"Demo","version":"1.0.0"})", kFile);
  expect_manifest_error(r, "invalid_manifest", "/module", "required property \"module\" is missing");
}

TEST_CASE("manifest: an unknown capability is named by /grants/N") {
  auto r = parse_manifest(R"({"id":"d","name":"D","version":"1.0.0","module":"d.so","grants":["ROUTES","NETWORK"]})",
                          kFile);
  expect_manifest_error(r, "invalid_manifest", "/grants/1", "\"NETWORK\" is not one of ROUTES, TOOLS");
}

TEST_CASE("manifest: capability names are case-sensitive") {
  auto r = parse_manifest(R"({"id":"d","name":"D","version":"1.0.0","module":"d.so","grants":["routes"]})", kFile);
  expect_manifest_error(r, "invalid_manifest", "/grants/0", "\"routes\" is not one of");
}

TEST_CASE("manifest: grants must be an array of unique items") {
  auto r = parse_manifest(R"({"id":"d","name":"D","version":"1.0.0","module":"d.so","grants":"ROUTES"})", kFile);
  expect_manifest_error(r, "invalid_manifest", "/grants", "expected array, got string");
  auto dup = parse_manifest(R"({"id":"d","name":"D","version":"1.0.0","module":"d.so","grants":["TOOLS","TOOLS"]})",
                            kFile);
  expect_manifest_error(dup, "invalid_manifest", "/grants/1", "unique");  // the repeat
}

TEST_CASE("manifest: an id with a space is refused with the id rule") {
  auto r = parse_manifest(R"({"id":"my ext","name":"D","version":"1.0.0","module":"d.so"})", kFile);
  expect_manifest_error(r, "invalid_manifest", "/id", "must start with a lower-case letter");
}

TEST_CASE("manifest: other bad ids") {
  for (const char* id : {"Upper", "1abc", "", "a-b", "ab.c"}) {
    CAPTURE(id);
    auto r = parse_manifest(fmt_id(id), kFile);
    expect_manifest_error(r, "invalid_manifest", "/id", "lower-case letter");
  }
}

TEST_CASE("manifest: a version that is not semantic is refused") {
  for (const char* v : {"1.0", "v1.0.0", "01.0.0", "1.0.0-", "1.0.0+", "latest"}) {
    CAPTURE(v);
    std::string text = std::string(R"({"id":"d","name":"D","module":"d.so","version":")") + v + "\"}";
    auto r = parse_manifest(text, kFile);
    expect_manifest_error(r, "invalid_manifest", "/version", "semantic version");
  }
}

TEST_CASE("manifest: a wrong type names the expected and actual type") {
  auto r = parse_manifest(R"({"id":"d","name":"D","version":"1.0.0","module":"d.so","eager":"yes"})", kFile);
  expect_manifest_error(r, "invalid_manifest", "/eager", "expected boolean, got string");
}

TEST_CASE("manifest: an unknown top-level property is refused") {
  auto r = parse_manifest(R"({"id":"d","name":"D","version":"1.0.0","module":"d.so","permissions":["ROUTES"]})",
                          kFile);
  expect_manifest_error(r, "invalid_manifest", "/permissions", "property \"permissions\" is not allowed");
}

TEST_CASE("manifest: x- properties are allowed in any order; others are not") {
  // RapidJSON 1.1.0 got patternProperties + additionalProperties:false wrong
  // when the x- key came first (validated it against the previous schema).
  auto first = parse_manifest(R"({"x-note":{"a":1},"id":"d","name":"D","version":"1.0.0","module":"d.so"})", kFile);
  CHECK_MESSAGE(first.ok(), (first.ok() ? "" : first.error().describe()));
  auto last = parse_manifest(R"({"id":"d","name":"D","version":"1.0.0","module":"d.so","grants":[],"x-note":7})", kFile);
  CHECK_MESSAGE(last.ok(), (last.ok() ? "" : last.error().describe()));
  auto other = parse_manifest(R"({"x-ok":1,"id":"d","name":"D","version":"1.0.0","module":"d.so","y-note":1})", kFile);
  expect_manifest_error(other, "invalid_manifest", "/y-note", "property \"y-note\" is not allowed");
}

TEST_CASE("manifest: the root must be an object") {
  auto r = parse_manifest(R"(["id"])", kFile);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == "invalid_manifest");
  CHECK(r.error().describe().find("expected object, got array") != std::string::npos);
}

TEST_CASE("manifest: a module path with .. is refused") {
  auto r = parse_manifest(R"({"id":"d","name":"D","version":"1.0.0","module":"../other/d.so"})", kFile);
  expect_manifest_error(r, "invalid_manifest", "/module", "must not contain \"..\"");
  auto inner = parse_manifest(R"({"id":"d","name":"D","version":"1.0.0","module":"lib/../../d.so"})", kFile);
  expect_manifest_error(inner, "invalid_manifest", "/module", "..");
}

TEST_CASE("manifest: an absolute module path is refused") {
  auto r = parse_manifest(R"({"id":"d","name":"D","version":"1.0.0","module":"/usr/lib/d.so"})", kFile);
  expect_manifest_error(r, "invalid_manifest", "/module", "relative to the extension folder");
}

TEST_CASE("manifest: load_manifest reads a file and reports an unreadable one") {
  test_support::TempDir dir;
  auto file = dir.path() / "extension.json";
  test_support::write_file(file, R"({"id":"d","name":"D","version":"1.0.0","module":"d.so"})");
  auto ok = ordinaut::load_manifest(file);
  REQUIRE(ok.ok());
  CHECK(ok->dir == dir.path());

  auto missing = ordinaut::load_manifest(dir.path() / "absent" / "extension.json");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == "unreadable_manifest");
  CHECK(missing.error().describe().find("absent/extension.json") != std::string::npos);
}

TEST_CASE("manifest: the schema text ships with the library and is valid JSON") {
  auto schema = ordinaut::json::parse(ordinaut::manifest_schema());
  REQUIRE(schema.ok());
  CHECK(schema->HasMember("properties"));
  CHECK(ordinaut::JsonSchema::compile(ordinaut::manifest_schema()).ok());
}

TEST_CASE("semantic versions and extension ids") {
  CHECK(ordinaut::is_semantic_version("0.0.0"));
  CHECK(ordinaut::is_semantic_version("10.20.30-alpha.1+sha.abc"));
  CHECK_FALSE(ordinaut::is_semantic_version("1.2"));
  CHECK_FALSE(ordinaut::is_semantic_version("1.02.3"));
  CHECK_FALSE(ordinaut::is_semantic_version("1.2.3-"));
  CHECK_FALSE(ordinaut::is_semantic_version("1.2.3-a..b"));
  CHECK(ordinaut::is_extension_id("a"));
  CHECK(ordinaut::is_extension_id("a_1"));
  CHECK_FALSE(ordinaut::is_extension_id("my ext"));
  CHECK_FALSE(ordinaut::is_extension_id(std::string(65, 'a')));
  CHECK(ordinaut::is_extension_id(std::string(64, 'a')));
}
