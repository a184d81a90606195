// HostServices: what every part of the host shares, made once by the
// ExtensionHost and fixed after start(): the options, the log sink, the tool
// registry, the event bus, the scope policy, the host's own request counters
// and the metrics registry. Internal to the host.
//
// Owns: those shared handles and nothing else; it decides nothing. The parts
// (catalog, loader, dispatcher, lifecycle, status, admin) each keep a
// reference to it.
//
// Thread safety: the fields are written only before start() returns (the
// environment is read then), except shut_down (atomic), host_counters
// (relaxed atomics) and the per-extension metrics scopes (metrics_mutex).
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "host/entry.hpp"
#include "ordinaut/events.hpp"
#include "ordinaut/host.hpp"
#include "ordinaut/logging.hpp"
#include "ordinaut/metrics.hpp"
#include "ordinaut/prompts.hpp"
#include "ordinaut/resources.hpp"
#include "ordinaut/tools.hpp"

namespace ordinaut::detail {

struct HostServices {
  explicit HostServices(HostOptions host_options);

  HostOptions options;
  std::shared_ptr<LogSink> sink;
  Logger logger{nullptr, ""};  // the host's own records (no extension id)
  std::shared_ptr<ToolRegistry> tools;
  std::shared_ptr<ResourceRegistry> resources;
  std::shared_ptr<PromptRegistry> prompts;
  std::shared_ptr<EventBus> bus;
  bool require_scopes = false;
  ScopeResolver scope_resolver;
  std::atomic<bool> shut_down{false};  // set once by shutdown(); no load after it

  RouteCounters host_counters;  // /ext/status and errors outside any extension

  // Business metrics: one root; each extension's "ext_{id}_" scope is made
  // once and kept for the host's lifetime, so a reload gets its metrics back.
  MetricsRegistry metrics;

  MetricsRegistry& metrics_of(const std::string& id);
  Logger extension_logger(const std::string& id) const { return Logger(sink, id); }

  // The scopes a request proves: with an authenticator, the Principal's (the
  // Gate put them in Request::scopes); else the ScopeResolver's answer, or
  // else the comma-separated X-Scopes header. Match them with scope_allows().
  std::vector<std::string> scopes_of(const Request& request) const;

 private:
  std::mutex metrics_mutex_;
  std::map<std::string, std::unique_ptr<MetricsRegistry>, std::less<>> extension_metrics_;
};

}  // namespace ordinaut::detail
