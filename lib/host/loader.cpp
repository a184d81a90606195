// Loader (loader.hpp).
#include "host/loader.hpp"

#include <chrono>
#include <stdexcept>

#include <fmt/format.h>

#include "host/contributions.hpp"
#include "host/module_loader.hpp"
#include "host/setup_context.hpp"
#include "ordinaut/json.hpp"

namespace ordinaut::detail {

namespace {

std::string quote_list(const std::vector<std::string>& names) {
  std::string out = "[";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i) out += ',';
    out += '"' + json::escape(names[i]) + '"';
  }
  return out + "]";
}

}  // namespace

void Loader::record_failure(Entry& entry, std::string phase, std::string reason) {
  {
    std::lock_guard lock(entry.info_mutex);
    entry.error_phase = phase;
    entry.last_error = reason;
  }
  entry.state.store(ExtensionState::error);
  withdraw_contributions(services_, entry);  // an extension in error lists nothing
  services_.extension_logger(entry.id).error("extension_failed", reason, fmt::format(R"({{"phase":"{}"}})", phase));
}

void Loader::release(Entry& entry, const std::shared_ptr<Runtime>& runtime) {
  Runtime& rt = *runtime;
  if (rt.tasks && !rt.tasks->stop_all().empty()) rt.abandoned.store(true);
  services_.bus->unsubscribe_all(entry.id);
  withdraw_contributions(services_, entry);
  services_.tools->hold_for_owner(entry.id, nullptr);
  services_.resources->hold_for_owner(entry.id, nullptr);
  services_.prompts->hold_for_owner(entry.id, nullptr);
  // Code of it may still run on an abandoned thread: never freed.
  if (rt.abandoned.load()) park_abandoned(runtime);
}

Result<void> Loader::declare(Entry& entry) {
  auto declared = declare_contributions(services_, entry);
  if (!declared) record_failure(entry, "discovery", declared.error().message);
  return declared;
}

Result<void> Loader::load_locked(Entry& entry) {
  if (entry.runtime.load(std::memory_order_acquire) && entry.state.load() == ExtensionState::active) {
    return {};
  }
  switch (entry.state.load()) {
    case ExtensionState::disabled: {
      std::lock_guard lock(entry.info_mutex);
      return make_error("disabled", fmt::format("extension '{}' is disabled: {}", entry.id, entry.state_reason));
    }
    case ExtensionState::error: {
      std::lock_guard lock(entry.info_mutex);
      return make_error("load_failed",
                        fmt::format("extension '{}' failed ({}): {}", entry.id, entry.error_phase, entry.last_error));
    }
    case ExtensionState::stopped: {
      std::lock_guard lock(entry.info_mutex);
      return make_error("stopped", fmt::format("extension '{}' is stopped: {}", entry.id, entry.state_reason));
    }
    default: break;
  }
  if (services_.shut_down.load()) {
    return make_error("stopped", fmt::format("extension '{}' is not loaded: the host has shut down", entry.id));
  }
  const auto started = std::chrono::steady_clock::now();
  entry.state.store(ExtensionState::loading);
  Logger log = services_.extension_logger(entry.id);

  // 1. Factory.
  ExtensionFactory factory = entry.factory;
  if (!factory) {
    const Manifest& m = *entry.manifest;
    auto raw = open_manifest_module(m);  // refuses a module outside its folder before dlopen
    if (!raw) {
      record_failure(entry, "load", raw.error().message);
      log.audit("extension_refused", raw.error().message, fmt::format(R"({{"code":"{}"}})", raw.error().code));
      return make_error("load_failed", raw.error().message);
    }
    factory = [f = *raw] { return std::unique_ptr<Extension>(f()); };
  }
  // Freed when the last lease on it ends (entry.hpp): a failed load here.
  auto runtime = std::make_shared<Runtime>();
  try {
    runtime->extension = factory();
    if (!runtime->extension) throw std::runtime_error("the factory returned no extension");
    runtime->info = runtime->extension->info();
    runtime->requested = runtime->extension->requested_capabilities();
  } catch (const std::exception& e) {
    record_failure(entry, "load", fmt::format("factory failed: {}", e.what()));
    return make_error("load_failed", fmt::format("extension '{}': factory failed: {}", entry.id, e.what()));
  }

  // 2. Info must match the manifest (or the registered id).
  std::string mismatch;
  if (runtime->info.id != entry.id) {
    mismatch = fmt::format("info().id is '{}' but the {} says '{}'", runtime->info.id,
                           entry.manifest ? "manifest" : "registration", entry.id);
  } else if (entry.manifest && runtime->info.version != entry.manifest->version) {
    mismatch = fmt::format("info().version is '{}' but the manifest says '{}'", runtime->info.version,
                           entry.manifest->version);
  } else if (!is_semantic_version(runtime->info.version)) {
    mismatch = fmt::format("info().version '{}' is not a semantic version", runtime->info.version);
  }
  if (!mismatch.empty()) {
    record_failure(entry, "load", mismatch);
    log.audit("extension_refused", mismatch);
    return make_error("load_failed", fmt::format("extension '{}': {}", entry.id, mismatch));
  }

  // 3. Grants.
  runtime->granted = runtime->requested & entry.approved;
  for (Capability c : (runtime->requested - entry.approved).list()) {
    log.audit("capability_denied",
              fmt::format("extension '{}' requested {} but it is not approved", entry.id, to_string(c)),
              fmt::format(R"({{"capability":"{}","approved":{}}})", to_string(c), quote_list(entry.approved.names())));
  }
  if (runtime->granted.contains(Capability::STATIC)) {
    runtime->static_dir = entry.manifest ? entry.manifest->dir / "static" : std::filesystem::path{};
  }

  // 4. Setup and startup.
  Runtime& rt = *runtime;
  // Tools it registers keep it alive while registered or called.
  services_.tools->hold_for_owner(entry.id, runtime);
  services_.resources->hold_for_owner(entry.id, runtime);
  services_.prompts->hold_for_owner(entry.id, runtime);
  if (rt.granted.contains(Capability::BACKGROUND_TASKS)) {
    rt.tasks = std::make_unique<TaskSupervisor>(
        entry.id, log,
        SupervisorLimits{services_.options.max_tasks_per_extension, services_.options.lifecycle_timeout});
  }
  std::string setup_error;
  try {
    rt.context = std::make_unique<HostSetupContext>(services_, status_, introspection_, entry, rt);
    rt.router = rt.extension->setup(*rt.context);
  } catch (const std::exception& e) {
    setup_error = e.what();
  } catch (...) {
    setup_error = "a non-standard exception";
  }
  if (!setup_error.empty()) {
    release(entry, runtime);
    record_failure(entry, "setup", fmt::format("setup() threw: {}", setup_error));
    return make_error("load_failed", fmt::format("extension '{}': setup() threw: {}", entry.id, setup_error));
  }
  if (auto same = check_contributions(services_, entry); !same) {
    release(entry, runtime);
    record_failure(entry, "setup", same.error().message);
    log.audit("extension_refused", same.error().message, R"({"code":"contribution_mismatch"})");
    return make_error("load_failed", fmt::format("extension '{}': {}", entry.id, same.error().message));
  }
  if (rt.router && !rt.granted.contains(Capability::ROUTES)) {
    // A requested-but-unapproved ROUTES was audited with the grants above:
    // one record per denial.
    if (!rt.router->empty() && !rt.requested.contains(Capability::ROUTES)) {
      log.audit("capability_denied",
                fmt::format("extension '{}' returned {} routes without the ROUTES grant; nothing is mounted", entry.id,
                            rt.router->routes().size()),
                R"({"capability":"ROUTES"})");
    }
    rt.router.reset();
  }
  if (rt.router) {
    for (const Route& route : rt.router->routes()) {
      rt.route_counters.push_back(std::make_unique<RouteCounters>());
      if (route.path == "/health" && (route.method == "GET" || route.method == "*")) rt.has_health_route = true;
    }
  }
  // On its own thread, so that a hung on_startup() holds this load (and the
  // requests waiting for it) no longer than the lifecycle timeout.
  auto startup = run_bounded([ext = rt.extension.get()] { ext->on_startup(); }, services_.options.lifecycle_timeout);
  if (startup.outcome != BoundedRun::Outcome::returned) {
    std::string reason = startup.outcome == BoundedRun::Outcome::threw
                             ? fmt::format("on_startup() threw: {}", startup.error)
                             : fmt::format("on_startup() did not return within {} ms and was abandoned",
                                           services_.options.lifecycle_timeout.count());
    if (startup.outcome == BoundedRun::Outcome::timed_out) rt.abandoned.store(true);
    release(entry, runtime);
    record_failure(entry, "startup", reason);
    return make_error("load_failed", fmt::format("extension '{}': {}", entry.id, reason));
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  {
    std::lock_guard lock(entry.info_mutex);
    entry.load_ms = ms;
    entry.clear_reasons();
  }
  entry.runtime.store(std::move(runtime), std::memory_order_release);
  entry.state.store(ExtensionState::active);
  order_.loaded(&entry);  // a reload moves it to the end
  log.info("extension_loaded", fmt::format("loaded {} {} in {:.2f} ms", entry.id, rt.info.version, ms),
           fmt::format(R"({{"granted":{},"routes":{},"load_ms":{:.3f}}})", quote_list(rt.granted.names()),
                       rt.router ? rt.router->routes().size() : 0, ms));
  return {};
}

Result<std::shared_ptr<Runtime>> Loader::ensure_loaded(Entry& entry) {
  if (std::shared_ptr<Runtime> rt = entry.runtime.load(std::memory_order_acquire);
      rt && entry.state.load(std::memory_order_acquire) == ExtensionState::active) {
    return rt;
  }
  std::lock_guard lock(entry.load_mutex);
  if (auto r = load_locked(entry); !r) return r.error();
  return entry.runtime.load(std::memory_order_acquire);
}

}  // namespace ordinaut::detail
