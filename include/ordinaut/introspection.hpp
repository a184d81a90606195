// HostIntrospection: what the host measures, read-only, for observability.
//
// Every extension can reach it through SetupContext::introspection(); it shows
// the same facts as GET /ext/status (which every extension can already read
// through host_status()), as typed values that are cheap to read on every
// scrape. The host owns all these counters; readers only expose them.
//
// Thread safety: every method is safe to call from many threads at once, and
// each returns a snapshot that the caller owns.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ordinaut/background.hpp"
#include "ordinaut/host.hpp"
#include "ordinaut/json.hpp"
#include "ordinaut/metrics.hpp"
#include "ordinaut/tools.hpp"
#include "ordinaut/version.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

/// Background tasks of one extension.
struct ExtensionTasks {
  std::string extension_id;       ///< the extension
  std::vector<TaskStatus> tasks;  ///< its tasks, in start order
};

/// Typed, read-only counters of the whole host (SetupContext::introspection()),
/// for dashboards such as observability. Safe to call from any thread.
class HostIntrospection {
 public:
  virtual ~HostIntrospection() = default;

  /// Every discovered extension with its state and per-route counters
  /// (same as ExtensionHost::snapshot()).
  virtual std::vector<ExtensionSnapshot> extensions() const = 0;
  /// Requests the host answered itself, outside any extension: /ext/status,
  /// unknown extension ids, paths outside /ext/, refused scopes, 413s.
  /// method is "*" and route "(host)".
  virtual RouteMetrics host_requests() const = 0;
  /// Per-tool calls, errors and time (ToolRegistry::stats()).
  virtual std::vector<ToolStats> tool_stats() const = 0;
  /// EventBus::health(): {"kind", "published", "delivered", "failed", "dropped", ...}.
  virtual Json event_bus_health() const = 0;
  /// EventBus::subscriber_health(): an array of the extension's subscriptions
  /// with their counters ("pending" is the lag, in events).
  virtual Json subscriber_health(std::string_view extension_id) const = 0;
  /// Background tasks of every loaded extension (empty when none run).
  virtual std::vector<ExtensionTasks> background_tasks() const = 0;
  /// The host's metrics registry: its own metrics and every extension's
  /// business metrics (all scopes).
  virtual const MetricsRegistry& metrics() const = 0;
};

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
