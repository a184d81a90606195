#include "ordinaut/testing.hpp"

#include <mutex>

#include "core/strings.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {
namespace testing {

struct TestClient::Captured {
  std::mutex mutex;
  std::vector<LogRecord> records;
};

TestClient::TestClient(std::unique_ptr<Extension> extension, TestClientOptions options)
    : captured_(std::make_shared<Captured>()) {
  id_ = extension->info().id;
  HostOptions host_options;
  host_options.read_environment = false;
  host_options.use_registered_extensions = false;
  host_options.require_scopes = options.require_scopes;
  host_options.tool_registry = options.tool_registry;
  host_options.event_bus = options.event_bus;
  host_options.log_sink = [captured = captured_](const LogRecord& r) {
    std::lock_guard lock(captured->mutex);
    captured->records.push_back(r);
  };
  host_ = std::make_unique<ExtensionHost>(std::move(host_options));
  // The instance is handed over once; the factory is only ever called once.
  auto holder = std::make_shared<std::unique_ptr<Extension>>(std::move(extension));
  host_->add_linked(
      id_, [holder] { return std::move(*holder); }, options.grants, true);
  (void)host_->start();
}

TestClient::~TestClient() = default;

Response TestClient::request(std::string method, std::string_view path, std::string body,
                             std::vector<std::pair<std::string, std::string>> headers) {
  Request r;
  r.method = std::move(method);
  std::string full = "/ext/" + id_;
  if (!path.empty() && path.front() != '/') full += '/';
  full += path;
  auto q = full.find('?');
  if (q != std::string::npos) {
    r.query_string = full.substr(q + 1);
    full.resize(q);
  }
  r.path = std::move(full);
  r.body = std::move(body);
  r.remote_addr = "test";
  for (auto& [k, v] : headers) r.headers.add(std::move(k), std::move(v));
  return host_->handle(r);
}

Response TestClient::host_request(std::string method, std::string path, std::string body) {
  Request r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.body = std::move(body);
  return host_->handle(r);
}

ExtensionState TestClient::state() const {
  for (const auto& s : host_->snapshot()) {
    if (s.id == id_) return s.state;
  }
  return ExtensionState::error;
}

std::string TestClient::setup_error() const {
  for (const auto& s : host_->snapshot()) {
    if (s.id == id_) return s.last_error;
  }
  return "extension not registered";
}

std::vector<LogRecord> TestClient::logs() const {
  std::lock_guard lock(captured_->mutex);
  return captured_->records;
}

std::vector<LogRecord> TestClient::audit_records() const {
  std::vector<LogRecord> out;
  std::lock_guard lock(captured_->mutex);
  for (const auto& r : captured_->records) {
    if (r.audit) out.push_back(r);
  }
  return out;
}

}  // namespace testing
}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
