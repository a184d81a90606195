// extension.json parsing and validation: every bad input names the file, the
// JSON pointer and the reason.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <ordinaut/manifest.hpp>

#include "host/module_loader.hpp"
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

// ---- issue 13: hostile manifests ------------------------------------------------

TEST_CASE("manifest: ids the host serves itself are reserved, with pointer /id") {
  for (const char* id : {"status", "core"}) {
    CAPTURE(id);
    expect_manifest_error(parse_manifest(fmt_id(id), kFile), "invalid_manifest", "/id", "is reserved");
    CHECK(ordinaut::is_reserved_extension_id(id));
  }
  // The id pattern already excludes these; they stay refused with pointer /id.
  for (const char* id : {"openapi.json", "_admin", "_x"}) {
    CAPTURE(id);
    expect_manifest_error(parse_manifest(fmt_id(id), kFile), "invalid_manifest", "/id", "");
    CHECK(ordinaut::is_reserved_extension_id(id));
    CHECK_FALSE(ordinaut::is_extension_id(id));
  }
  CHECK_FALSE(ordinaut::is_reserved_extension_id("statuses"));
  CHECK(parse_manifest(fmt_id("status_page"), kFile).ok());
}

TEST_CASE("manifest: a duplicate key is refused and named, not first-wins") {
  auto r = parse_manifest(R"({"id":"d","name":"D","version":"1.0.0","module":"d.so","module":"evil.so"})", kFile);
  expect_manifest_error(r, "invalid_json", "", R"(duplicate key "module")");
  CHECK(r.error().offset.has_value());
}

TEST_CASE("manifest: a name that is not UTF-8 is refused at the byte") {
  auto r = parse_manifest("{\"id\":\"d\",\"name\":\"D\xff\",\"version\":\"1.0.0\",\"module\":\"d.so\"}", kFile);
  expect_manifest_error(r, "invalid_json", "", "invalid UTF-8 at offset 19");
  CHECK(r.error().offset == std::optional<std::size_t>(19));
}

TEST_CASE("load_manifest: only a regular file named extension.json, within the size cap") {
  test_support::TempDir tmp;
  const std::string good = fmt_id("d");
  auto ok_file = tmp.path() / "ok" / "extension.json";
  test_support::write_file(ok_file, good);
  CHECK(ordinaut::load_manifest(ok_file).ok());

  auto expect = [](const ordinaut::Result<ordinaut::Manifest>& r, const std::filesystem::path& file,
                   const std::string& code, const std::string& reason) {
    REQUIRE_FALSE(r.ok());
    INFO(r.error().describe());
    CHECK(r.error().code == code);
    CHECK(r.error().file == file.string());
    CHECK(r.error().message.find(reason) != std::string::npos);
  };
  // A folder named extension.json.
  auto folder = tmp.path() / "folder" / "extension.json";
  std::filesystem::create_directories(folder);
  expect(ordinaut::load_manifest(folder), folder, "unreadable_manifest", "is a folder, not a regular file");
  // A FIFO: refused without blocking on it.
  auto fifo = tmp.path() / "fifo" / "extension.json";
  std::filesystem::create_directories(fifo.parent_path());
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  expect(ordinaut::load_manifest(fifo), fifo, "unreadable_manifest", "is a FIFO, not a regular file");
  // Another name.
  auto other = tmp.path() / "ok" / "manifest.json";
  test_support::write_file(other, good);
  expect(ordinaut::load_manifest(other), other, "unreadable_manifest", "must be named extension.json");
  // Missing.
  auto missing = tmp.path() / "none" / "extension.json";
  expect(ordinaut::load_manifest(missing), missing, "unreadable_manifest", "cannot read");
  // A symlink to a regular file is read as the file.
  auto link = tmp.path() / "link" / "extension.json";
  std::filesystem::create_directories(link.parent_path());
  std::filesystem::create_symlink(ok_file, link);
  CHECK(ordinaut::load_manifest(link).ok());

  // Size cap: the default is 1 MiB; the error names the file and the cap.
  CHECK(ordinaut::kDefaultManifestMaxBytes == 1024 * 1024);
  auto big = tmp.path() / "big" / "extension.json";
  std::string padded = good;
  padded.insert(padded.size() - 1, ",\"x-pad\":\"" + std::string(ordinaut::kDefaultManifestMaxBytes, 'p') + "\"");
  test_support::write_file(big, padded);
  expect(ordinaut::load_manifest(big), big, "manifest_too_large", "larger than 1048576 bytes");
  CHECK(ordinaut::load_manifest(big, 2 * ordinaut::kDefaultManifestMaxBytes).ok());
  expect(ordinaut::load_manifest(ok_file, 10), ok_file, "manifest_too_large", "larger than 10 bytes");
  CHECK(ordinaut::load_manifest(ok_file, good.size()).ok());
  {
    test_support::ScopedEnv env("ORDINAUT_MANIFEST_MAX_BYTES", "3000000");
    CHECK(ordinaut::load_manifest(big).ok());
  }
  {
    test_support::ScopedEnv env("ORDINAUT_MANIFEST_MAX_BYTES", "lots");
    expect(ordinaut::load_manifest(ok_file), ok_file, "invalid_setting", "ORDINAUT_MANIFEST_MAX_BYTES");
  }
}

TEST_CASE("resolve_module_path: a module resolving outside its folder is refused before loading") {
  test_support::TempDir tmp;
  auto dir = tmp.path() / "ext";
  test_support::write_file(dir / "inside.so", "not really a module");
  test_support::write_file(dir / "lib" / "nested.so", "x");
  test_support::write_file(tmp.path() / "outside.so", "x");
  std::filesystem::create_symlink(tmp.path() / "outside.so", dir / "escape.so");
  std::filesystem::create_symlink(dir / "inside.so", dir / "alias.so");
  std::filesystem::create_directory_symlink(tmp.path(), dir / "up");
  ordinaut::Manifest m;
  m.dir = dir;
  m.file = dir / "extension.json";

  m.module = "inside.so";
  auto inside = ordinaut::detail::resolve_module_path(m);
  REQUIRE(inside.ok());
  CHECK(*inside == std::filesystem::canonical(dir / "inside.so"));
  m.module = "alias.so";
  CHECK(ordinaut::detail::resolve_module_path(m).ok());
  m.module = "lib/nested.so";
  CHECK(ordinaut::detail::resolve_module_path(m).ok());
  for (const char* bad : {"escape.so", "up/outside.so"}) {
    CAPTURE(bad);
    m.module = bad;
    auto r = ordinaut::detail::resolve_module_path(m);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "module_outside_folder");
    CHECK(r.error().message.find("outside the extension folder") != std::string::npos);
    // open_manifest_module refuses it the same way (no dlopen of a text file).
    auto opened = ordinaut::detail::open_manifest_module(m);
    REQUIRE_FALSE(opened.ok());
    CHECK(opened.error().code == "module_outside_folder");
  }
  m.module = "missing.so";
  CHECK(ordinaut::detail::resolve_module_path(m).error().code == "module_not_found");
  m.module = "lib";
  CHECK(ordinaut::detail::resolve_module_path(m).error().code == "module_not_found");
}
