// Helpers for host tests: test extension folders and a host with captured logs.
#pragma once

#include <dlfcn.h>

#include <string>

#include <ordinaut/host.hpp>

#include "support.hpp"

#ifndef ORDINAUT_TEST_EXT_DIR
#error "ORDINAUT_TEST_EXT_DIR must name build/tests/extensions"
#endif

namespace test_support {

/// A module built in tests/extensions: good, no_factory, abi999, mismatch, marker.
inline std::filesystem::path test_module(const std::string& name) {
  return std::filesystem::path(ORDINAUT_TEST_EXT_DIR) / name / (name + "_ext.so");
}

inline std::string manifest_json(const std::string& id, const std::string& module, const std::string& grants,
                                 const std::string& extra = {}, const std::string& version = "1.0.0") {
  std::string text = R"({"id":")" + id + R"(","name":"Test )" + id + R"(","version":")" + version +
                     R"(","module":")" + module + "\"";
  if (!grants.empty()) text += R"(,"grants":)" + grants;
  if (!extra.empty()) text += "," + extra;
  return text + "}";
}

/// Creates `root/folder/extension.json` and places `module_name` from
/// tests/extensions into the folder (place_module) under the name the
/// manifest uses.
inline std::filesystem::path make_extension(const std::filesystem::path& root, const std::string& folder,
                                            const std::string& manifest, const std::string& module_name = {},
                                            const std::string& link_as = {}) {
  std::filesystem::path dir = root / folder;
  write_file(dir / "extension.json", manifest);
  if (!module_name.empty()) {
    std::filesystem::path target = test_module(module_name);
    place_module(target, dir / (link_as.empty() ? target.filename().string() : link_as));
  }
  return dir;
}

/// Constructions of the "good" extension in this process (0 before its module
/// was ever loaded). dlopen finds the already-loaded module by file identity.
inline int good_constructed() {
  void* handle = ::dlopen(test_module("good").c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (handle == nullptr) return 0;
  auto fn = reinterpret_cast<int (*)()>(::dlsym(handle, "good_ext_constructed"));
  int n = fn ? fn() : -1;
  ::dlclose(handle);
  return n;
}

/// Unsets every variable the host reads, restoring them afterwards.
struct CleanEnvironment {
  ScopedEnv paths{"ORDINAUT_EXT_PATHS", std::nullopt};
  ScopedEnv grants{"ORDINAUT_EXT_ENTRY_GRANTS", std::nullopt};
  ScopedEnv eager{"ORDINAUT_EXT_ENTRY_EAGER", std::nullopt};
  ScopedEnv scopes{"ORDINAUT_REQUIRE_SCOPES", std::nullopt};
  ScopedEnv hosts{"ORDINAUT_ALLOWED_HOSTS", std::nullopt};
  ScopedEnv mcp_hosts{"ORDINAUT_MCP_ALLOWED_HOSTS", std::nullopt};
  ScopedEnv origins{"ORDINAUT_ALLOWED_ORIGINS", std::nullopt};
};

/// Host options for a test: no environment, no global registrations, logs
/// captured.
inline ordinaut::HostOptions host_options(LogCapture& logs, std::vector<std::filesystem::path> paths = {}) {
  ordinaut::HostOptions o;
  o.read_environment = false;
  o.use_registered_extensions = false;
  o.extension_paths = std::move(paths);
  o.log_sink = logs.sink();
  return o;
}

inline ordinaut::Response send(ordinaut::ExtensionHost& host, std::string method, std::string path,
                               std::string body = {},
                               std::vector<std::pair<std::string, std::string>> headers = {}) {
  ordinaut::Request r = make_request(std::move(method), std::move(path), std::move(body));
  for (auto& [k, v] : headers) r.headers.add(k, v);
  return host.handle(r);
}

/// The status entry of one extension (REQUIRES it exists).
inline ordinaut::Json extension_status(ordinaut::ExtensionHost& host, const std::string& id) {
  ordinaut::Json status = host.status();
  REQUIRE(status["extensions"].HasMember(id.c_str()));
  return ordinaut::json::copy(status["extensions"][id.c_str()]);
}

inline std::string state_of(ordinaut::ExtensionHost& host, const std::string& id) {
  return str(extension_status(host, id)["state"]);
}

inline std::vector<std::string> strings(const ordinaut::JsonValue& array) {
  std::vector<std::string> out;
  for (auto& v : array.GetArray()) out.emplace_back(v.GetString(), v.GetStringLength());
  return out;
}

}  // namespace test_support
