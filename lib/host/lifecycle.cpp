// Lifecycle (lifecycle.hpp).
#include "host/contributions.hpp"
#include "host/lifecycle.hpp"

#include <fmt/format.h>

#include "background/background_supervisor.hpp"

namespace ordinaut::detail {

void Lifecycle::shutdown_all() {
  std::vector<Entry*> order = order_.copy();
  for (auto it = order.rbegin(); it != order.rend(); ++it) shutdown_entry(**it);
  // A lazy load that was under way while the order was copied has finished by
  // now (shutdown_entry waits for its lock); no load starts after shut_down.
  for (const auto& entry : catalog_.entries()) shutdown_entry(*entry);
}

void Lifecycle::shutdown_entry(Entry& entry) {
  std::lock_guard lock(entry.load_mutex);
  if (entry.state.load() != ExtensionState::active) return;
  stop_locked(entry, ExtensionState::stopped, "the host is shutting down");
}

// Takes an active runtime down in the order of R6: on_shutdown() (bounded by
// the lifecycle timeout), background tasks (stop requested, bounded wait, then
// abandoned), event subscriptions, tools, and last the routes: the state
// leaves `active`, so the next request gets the host's answer with `reason`.
// The Runtime itself stays alive for requests, streams and tool calls still in
// it (their leases) and is freed after the last one (entry.hpp).
// REQUIRES: entry.load_mutex held.
void Lifecycle::stop_locked(Entry& entry, ExtensionState next, const std::string& reason) {
  Logger log = services_.extension_logger(entry.id);
  std::shared_ptr<Runtime> rt = entry.runtime.load(std::memory_order_acquire);
  const bool active = rt && entry.state.load() == ExtensionState::active;
  std::string problem;
  if (active) {
    auto outcome =
        run_bounded([ext = rt->extension.get()] { ext->on_shutdown(); }, services_.options.lifecycle_timeout);
    if (outcome.outcome == BoundedRun::Outcome::threw) {
      problem = fmt::format("on_shutdown() threw: {}", outcome.error);
      log.error("shutdown_failed", problem);
    } else if (outcome.outcome == BoundedRun::Outcome::timed_out) {
      rt->abandoned.store(true);
      problem = fmt::format("on_shutdown() did not return within {} ms and was abandoned",
                            services_.options.lifecycle_timeout.count());
      log.error("shutdown_timeout", problem,
                fmt::format(R"({{"timeout_ms":{}}})", services_.options.lifecycle_timeout.count()));
    }
    loader_.release(entry, rt);
  }
  {
    std::lock_guard lock(entry.info_mutex);
    entry.state_reason = reason;
    if (!problem.empty()) {
      entry.last_error = problem;
      entry.error_phase = "shutdown";
    }
  }
  entry.state.store(next);
  withdraw_contributions(services_, entry);  // also what a lazy, never-loaded entry declared
  if (next != ExtensionState::stopped) order_.removed(&entry);
  if (active) {
    log.info("extension_stopped",
             fmt::format("{}: on_shutdown() run, tasks stopped, subscriptions and tools "
                         "removed, routes unmounted",
                         reason),
             fmt::format(R"({{"state":"{}"}})", to_string(next)));
  }
}

Result<void> Lifecycle::disable(Entry& entry, const std::string& actor) {
  std::lock_guard lock(entry.load_mutex);
  if (services_.shut_down.load())
    return make_error("host_stopped", "the host has shut down; extensions can no longer change");
  if (entry.state.load() == ExtensionState::disabled) return {};
  stop_locked(entry, ExtensionState::disabled, "disabled by " + actor);
  std::lock_guard info(entry.info_mutex);
  entry.enabled = false;
  return {};
}

// Back to the state it has after start(): eager extensions load now, lazy ones
// on their next use. Also the way to retry an extension in `error`.
Result<void> Lifecycle::enable(Entry& entry, const std::string& actor) {
  std::lock_guard lock(entry.load_mutex);
  if (services_.shut_down.load())
    return make_error("host_stopped", "the host has shut down; extensions can no longer change");
  if (entry.state.load() == ExtensionState::active) return {};
  bool eager = false;
  {
    std::lock_guard info(entry.info_mutex);
    entry.enabled = true;
    eager = entry.eager;
    entry.clear_reasons();
  }
  entry.runtime.store(nullptr, std::memory_order_release);  // freed after its last lease
  entry.state.store(ExtensionState::discovered);
  services_.extension_logger(entry.id).info("extension_enabled", "enabled by " + actor);
  if (auto declared = loader_.declare(entry); !declared) return declared;
  if (eager) return loader_.load_locked(entry);
  return {};
}

// Re-reads the manifest and sets the extension up again with it. A manifest
// that cannot be read or is invalid changes nothing: the running extension
// keeps serving and the error is returned. A valid one replaces the old
// runtime: on failure the extension is in `error` with the phase and reason.
Result<void> Lifecycle::reload(Entry& entry, const std::string& actor) {
  std::lock_guard lock(entry.load_mutex);
  if (services_.shut_down.load())
    return make_error("host_stopped", "the host has shut down; extensions can no longer change");
  Logger log = services_.extension_logger(entry.id);
  std::optional<Manifest> fresh;
  if (entry.manifest) {
    auto m = load_manifest(entry.manifest->file);
    if (!m) {
      Error e = m.error();
      e.message = fmt::format("reload of '{}' refused, nothing changed: {}", entry.id, m.error().message);
      log.error("reload_refused", e.describe(), fmt::format(R"({{"code":"{}"}})", e.code));
      return e;
    }
    if (m->id != entry.id) {
      Error e = make_error("invalid_manifest",
                           fmt::format("reload of '{}' refused, nothing changed: the manifest's id is now '{}'; an "
                                       "extension keeps its id (add it as a new extension instead)",
                                       entry.id, m->id));
      e.file = entry.manifest->file.string();
      e.pointer = "/id";
      log.error("reload_refused", e.describe());
      return e;
    }
    fresh = std::move(m).value();
  }
  stop_locked(entry, ExtensionState::loading, "reloading, asked by " + actor);
  bool enabled = true;
  {
    std::lock_guard info(entry.info_mutex);
    if (fresh) {
      entry.approved = fresh->grants;
      entry.eager = fresh->eager;
      entry.enabled = fresh->enabled;
      entry.manifest = std::move(fresh);
    } else {
      entry.enabled = true;
    }
    enabled = entry.enabled;
    entry.clear_reasons();
  }
  entry.runtime.store(nullptr, std::memory_order_release);  // freed after its last lease
  if (!enabled) {
    {
      std::lock_guard info(entry.info_mutex);
      entry.state_reason = "its manifest says \"enabled\": false (read at reload)";
    }
    entry.state.store(ExtensionState::disabled);
    log.info("extension_reloaded", "manifest re-read; it is disabled there, so it stays unloaded");
    return {};
  }
  entry.state.store(ExtensionState::discovered);
  if (auto declared = loader_.declare(entry); !declared) return declared;
  auto loaded = loader_.load_locked(entry);
  if (loaded) log.info("extension_reloaded", "manifest re-read and extension set up again by " + actor);
  return loaded;
}

}  // namespace ordinaut::detail
