// HostServices (services.hpp).
#include "host/services.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "core/strings.hpp"
#include "ordinaut/json.hpp"

namespace ordinaut::detail {

namespace {

// Publishes an audit record on the bus as "audit.{event}", source "host", so
// that an extension (granted EVENTS_SUB) can watch authentication failures,
// admin actions and denials. Holds the bus weakly: loggers outlive the host
// (abandoned runtimes keep theirs), and the bus holds loggers of its own.
void publish_audit(const std::weak_ptr<EventBus>& weak_bus, const LogRecord& r) {
  thread_local bool publishing = false;  // a bus that audits while publishing must not loop
  auto bus = weak_bus.lock();
  if (!bus || publishing) return;
  publishing = true;
  try {
    Json payload = json::object();
    auto& a = payload.GetAllocator();
    payload.AddMember("event", JsonValue(r.event.data(), static_cast<rapidjson::SizeType>(r.event.size()), a), a);
    payload.AddMember("extension",
                      JsonValue(r.extension.data(), static_cast<rapidjson::SizeType>(r.extension.size()), a), a);
    payload.AddMember("message", JsonValue(r.message.data(), static_cast<rapidjson::SizeType>(r.message.size()), a),
                      a);
    if (!r.fields_json.empty()) {
      if (auto fields = json::parse(r.fields_json); fields) payload.AddMember("fields", JsonValue(*fields, a), a);
    }
    payload.AddMember("time", JsonValue(rfc3339(r.time_ms).c_str(), a), a);
    (void)bus->publish(fmt::format("audit.{}", r.event), "host", payload);
  } catch (...) {
    // An audit record is already in the log; the event is best effort.
  }
  publishing = false;
}

}  // namespace

HostServices::HostServices(HostOptions host_options) : options(std::move(host_options)) {
  tools = options.tool_registry ? options.tool_registry : std::make_shared<ToolRegistry>();
  resources = options.resource_registry ? options.resource_registry : std::make_shared<ResourceRegistry>();
  prompts = options.prompt_registry ? options.prompt_registry : std::make_shared<PromptRegistry>();
  bus = options.event_bus ? options.event_bus : make_memory_event_bus();
  LogSink base = options.log_sink ? options.log_sink : stderr_log_sink();
  sink = std::make_shared<LogSink>([base = std::move(base), weak_bus = std::weak_ptr<EventBus>(bus)](const LogRecord& r) {
    base(r);
    if (r.audit) publish_audit(weak_bus, r);
  });
  logger = Logger(sink, "");
  require_scopes = options.require_scopes.value_or(false);
  scope_resolver = options.scope_resolver;
}

MetricsRegistry& HostServices::metrics_of(const std::string& id) {
  std::lock_guard lock(metrics_mutex_);
  auto& scope = extension_metrics_[id];
  if (!scope) scope = metrics.scope("ext_" + id + "_");
  return *scope;
}

std::vector<std::string> HostServices::scopes_of(const Request& request) const {
  if (options.authenticator) return request.scopes;  // the Gate filled them from the Principal
  if (scope_resolver) return scope_resolver(request);
  std::vector<std::string> scopes;
  for (const auto& s : split(request.header("X-Scopes"), ',')) {
    auto t = trim(s);
    if (!t.empty()) scopes.emplace_back(t);
  }
  return scopes;
}

}  // namespace ordinaut::detail
