// Unit-testing an extension without a network.
//
// TestClient constructs a host around one extension instance, grants it the
// capabilities you choose, runs setup() (and on_startup()), and lets you send
// requests to its routes and call tools — in process, through exactly the
// dispatch code the server uses (capability checks, request-schema validation,
// error handling), without sockets.
//
//   ordinaut::testing::TestClient client(std::make_unique<MyExtension>(),
//                                        {.grants = {ordinaut::Capability::ROUTES}});
//   auto r = client.get("/hello");
//   CHECK(r.status == 200);
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ordinaut/extension.hpp"
#include "ordinaut/host.hpp"
#include "ordinaut/logging.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {
namespace testing {

/// How a TestClient sets its extension up.
struct TestClientOptions {
  /// Approved capabilities; granted = requested ∩ grants.
  CapabilitySet grants{};
  /// Registry to register into and call from; a fresh one when null (a stand-in
  /// that lives only as long as the client).
  std::shared_ptr<ToolRegistry> tool_registry{};
  /// Event bus; a fresh in-memory one when null.
  std::shared_ptr<EventBus> event_bus{};
  /// Folder of the extension (for STATIC); may be empty.
  std::filesystem::path extension_dir{};
  /// Require scopes as HostOptions::require_scopes does (send X-Scopes).
  bool require_scopes = false;
};

/// One extension in a host of its own, driven in process: see the top of
/// this header.
class TestClient {
 public:
  /// Sets the extension up. If setup() or on_startup() throws, the client still
  /// constructs; state() is then `error` and setup_error() holds the reason.
  explicit TestClient(std::unique_ptr<Extension> extension, TestClientOptions options = {});
  ~TestClient();

  /// Sends a request to `path`, relative to the mount ("/hello" → /ext/{id}/hello).
  Response request(std::string method, std::string_view path, std::string body = {},
                   std::vector<std::pair<std::string, std::string>> headers = {});
  /// A GET of `path` (which may carry "?query").
  Response get(std::string_view path) { return request("GET", path); }
  /// A POST of `body` with `content_type`.
  Response post(std::string_view path, std::string body,
                std::string content_type = "application/json") {
    return request("POST", path, std::move(body), {{"Content-Type", std::move(content_type)}});
  }
  /// Sends an absolute request (e.g. "/ext/status") to the host.
  Response host_request(std::string method, std::string path, std::string body = {});

  /// The host around the extension.
  ExtensionHost& host() { return *host_; }
  /// The host's tool registry: call the extension's tools here.
  ToolRegistry& tools() { return host_->tools(); }
  /// The extension's info().id.
  const std::string& extension_id() const { return id_; }
  /// `active` after a good setup, `error` when setup() or on_startup() threw.
  ExtensionState state() const;
  /// Why the state is `error`; "" otherwise.
  std::string setup_error() const;
  /// Every log and audit record so far.
  std::vector<LogRecord> logs() const;
  /// The audit records among them.
  std::vector<LogRecord> audit_records() const;

 private:
  struct Captured;
  std::shared_ptr<Captured> captured_;
  std::unique_ptr<ExtensionHost> host_;
  std::string id_;
};

}  // namespace testing
}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
