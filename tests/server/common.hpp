// Shared by the server test programs: where the binary and the test
// extensions are, and how to start a server with them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <httplib.h>

#include <ordinaut/json.hpp>

#include "server_process.hpp"

namespace server_test {

inline std::string server_binary() { return env_or_throw("ORDINAUT_SERVER_BIN"); }
/// Folder holding srvtest's extension.json and module (build tree).
inline std::string srvtest_dir() { return env_or_throw("ORDINAUT_SRVTEST_DIR"); }

/// ordinaut-server on a free port with srvtest on its extension path.
inline std::unique_ptr<ServerProcess> start_server(std::vector<std::string> extra_args = {},
                                                   std::vector<std::pair<std::string, std::string>> env = {}) {
  std::vector<std::string> args = {"--port", "0", "--ext-path", srvtest_dir()};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  return std::make_unique<ServerProcess>(server_binary(), args, env);
}

inline std::unique_ptr<httplib::Client> client(int port) {
  auto c = std::make_unique<httplib::Client>("127.0.0.1", port);
  c->set_connection_timeout(5, 0);
  c->set_read_timeout(15, 0);
  c->set_url_encode(false);  // send paths exactly as the test writes them
  return c;
}

inline ordinaut::Json parse_json(const std::string& text) {
  auto doc = ordinaut::json::parse(text);
  REQUIRE_MESSAGE(doc.ok(), "not JSON: " << text);
  return std::move(doc).value();
}

inline std::string str(const ordinaut::JsonValue& v, const char* key) {
  auto s = ordinaut::json::get_string(v, key);
  return s ? std::string(*s) : std::string("<missing>");
}

/// Checks the error shape {"error": code, "message": ..., "details": {...}}.
inline void check_error_shape(const std::string& body, const std::string& code) {
  auto doc = parse_json(body);
  CHECK(str(doc, "error") == code);
  CHECK(doc.HasMember("message"));
  CHECK(!str(doc, "message").empty());
  REQUIRE(doc.HasMember("details"));
  CHECK(doc["details"].IsObject());
}

inline std::string extension_state(int port, const std::string& id, const httplib::Headers& headers = {}) {
  auto res = client(port)->Get("/ext/status", headers);
  REQUIRE(res);
  auto doc = parse_json(res->body);
  if (!doc["extensions"].HasMember(id.c_str())) return "<absent>";
  return str(doc["extensions"][id.c_str()], "state");
}

}  // namespace server_test
