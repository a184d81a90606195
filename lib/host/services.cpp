// HostServices (services.hpp).
#include "host/services.hpp"

#include <algorithm>

#include "core/strings.hpp"

namespace ordinaut::detail {

HostServices::HostServices(HostOptions host_options) : options(std::move(host_options)) {
  sink = std::make_shared<LogSink>(options.log_sink ? options.log_sink : stderr_log_sink());
  logger = Logger(sink, "");
  tools = options.tool_registry ? options.tool_registry : std::make_shared<ToolRegistry>();
  bus = options.event_bus ? options.event_bus : make_memory_event_bus();
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
  if (scope_resolver) return scope_resolver(request);
  std::vector<std::string> scopes;
  for (const auto& s : split(request.header("X-Scopes"), ',')) {
    auto t = trim(s);
    if (!t.empty()) scopes.emplace_back(t);
  }
  return scopes;
}

bool has_scope(const std::vector<std::string>& scopes, std::string_view needed) {
  return std::find(scopes.begin(), scopes.end(), needed) != scopes.end();
}

}  // namespace ordinaut::detail
