// ExtensionHost: discovery, lazy loading, capability grants, dispatch, status.
#include "ordinaut/host.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <shared_mutex>

#include <fmt/format.h>

#include "ordinaut/introspection.hpp"
#include "ordinaut/manifest.hpp"
#include "background/background_supervisor.hpp"
#include "host/module_loader.hpp"
#include "host/openapi.hpp"
#include "http/static_files.hpp"
#include "core/strings.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

const char* to_string(ExtensionState state) noexcept {
  switch (state) {
    case ExtensionState::discovered: return "discovered";
    case ExtensionState::loading: return "loading";
    case ExtensionState::active: return "active";
    case ExtensionState::error: return "error";
    case ExtensionState::disabled: return "disabled";
    case ExtensionState::stopped: return "stopped";
  }
  return "unknown";
}

const std::vector<double>& latency_buckets() {
  static const std::vector<double> buckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                              0.025,  0.05,    0.1,    0.25,  0.5,    1.0,   2.5, 5.0, 10.0};
  return buckets;
}

namespace {

std::mutex& registered_mutex() {
  static std::mutex m;
  return m;
}
std::vector<std::pair<std::string, ExtensionFactory>>& registered_extensions() {
  static std::vector<std::pair<std::string, ExtensionFactory>> list;
  return list;
}

constexpr std::size_t kBucketCount = 16;

// Counters of one route (or of an extension's unrouted requests). Relaxed
// atomics: each is an independent tally read only for reporting.
struct RouteCounters {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> errors{0};
  std::array<std::atomic<std::uint64_t>, 6> status_class{};
  // Latency per status class (index = status / 100), so that readers can give
  // a histogram per class or, summed, per route.
  std::array<std::atomic<std::uint64_t>, 6> nanos{};
  std::array<std::array<std::atomic<std::uint64_t>, kBucketCount>, 6> buckets{};  // non-cumulative

  void record(int status, std::chrono::nanoseconds elapsed) {
    requests.fetch_add(1, std::memory_order_relaxed);
    if (status >= 500) errors.fetch_add(1, std::memory_order_relaxed);
    const auto cls = static_cast<std::size_t>(std::clamp(status / 100, 0, 5));
    status_class[cls].fetch_add(1, std::memory_order_relaxed);
    nanos[cls].fetch_add(static_cast<std::uint64_t>(elapsed.count()), std::memory_order_relaxed);
    const double seconds = static_cast<double>(elapsed.count()) / 1e9;
    const auto& bounds = latency_buckets();
    for (std::size_t i = 0; i < kBucketCount; ++i) {
      if (seconds <= bounds[i]) {
        buckets[cls][i].fetch_add(1, std::memory_order_relaxed);
        break;
      }
    }
  }

  RouteMetrics snapshot(std::string method, std::string route) const {
    RouteMetrics m;
    m.method = std::move(method);
    m.route = std::move(route);
    m.requests = requests.load(std::memory_order_relaxed);
    m.errors = errors.load(std::memory_order_relaxed);
    m.buckets.assign(kBucketCount, 0);
    for (std::size_t c = 0; c < 6; ++c) {
      m.status_class[c] = status_class[c].load(std::memory_order_relaxed);
      m.class_seconds[c] = static_cast<double>(nanos[c].load(std::memory_order_relaxed)) / 1e9;
      m.seconds_total += m.class_seconds[c];
      if (m.status_class[c] == 0) continue;
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i < kBucketCount; ++i) {
        cumulative += buckets[c][i].load(std::memory_order_relaxed);
        m.class_buckets[c].push_back(cumulative);
        m.buckets[i] += cumulative;
      }
    }
    return m;
  }
};

struct Entry;

// The live state of a loaded extension. Immutable once published, except for
// counters; kept alive until the host is destroyed, so a request that raced
// with a shutdown or reload still finds valid objects.
struct Runtime {
  std::unique_ptr<Extension> extension;
  ExtensionInfo info;
  CapabilitySet requested;
  CapabilitySet granted;
  std::optional<Router> router;
  std::vector<std::unique_ptr<RouteCounters>> route_counters;  // parallel to router->routes()
  RouteCounters unrouted;  // 404/405 and static files
  std::filesystem::path static_dir;
  bool has_health_route = false;
  // Lives as long as the runtime, so handles an extension keeps by reference
  // (tools(), logger(), ...) stay valid after setup() returns.
  std::unique_ptr<SetupContext> context;
  // Set when a thread running this runtime's code was abandoned (a hung
  // on_startup/on_shutdown or task): the runtime is then never freed.
  std::atomic<bool> abandoned{false};
  // With BACKGROUND_TASKS. Last member: destroyed first, so every task has
  // stopped before the extension it runs is freed.
  std::unique_ptr<detail::TaskSupervisor> tasks;
};

// Runtimes whose code may still run on an abandoned thread, kept for the rest
// of the process. Deliberately never destroyed (no static destructor runs
// while such a thread may still use them). What they keep is the extension
// object, its module and what it owns; the handles into the host in their
// SetupContext point into a host that is gone, so an abandoned hook must not
// use them once the host is destroyed (docs/lifecycle.md says so).
void park_abandoned(std::unique_ptr<Runtime> runtime) noexcept {
  static auto* mutex = new std::mutex;
  static auto* parked = new std::vector<std::unique_ptr<Runtime>>;
  std::lock_guard lock(*mutex);
  try {
    parked->push_back(std::move(runtime));
  } catch (...) {
    (void)runtime.release();  // out of memory: leak it rather than free it under the thread
  }
}

struct Entry {
  std::string id;
  std::string source;  // builtin | path | linked
  // manifest, approved, eager and enabled change at run time (reload, enable,
  // disable) only with both load_mutex and info_mutex held: read them holding
  // either one.
  std::optional<Manifest> manifest;
  ExtensionFactory factory;  // linked-in only
  CapabilitySet approved;
  bool eager = false;
  bool enabled = true;

  std::mutex load_mutex;  // serialises load and shutdown of this entry
  std::atomic<ExtensionState> state{ExtensionState::discovered};
  std::atomic<Runtime*> runtime{nullptr};
  std::vector<std::unique_ptr<Runtime>> runtimes;  // every runtime ever made; guarded by load_mutex

  mutable std::mutex info_mutex;  // guards the fields below
  std::string last_error;
  std::string error_phase;
  std::string state_reason;  // why it is disabled or stopped
  double load_ms = 0;
};

std::string quote_list(const std::vector<std::string>& names) {
  std::string out = "[";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i) out += ',';
    out += '"' + json::escape(names[i]) + '"';
  }
  return out + "]";
}

JsonValue string_array(const std::vector<std::string>& items, Json::AllocatorType& a) {
  JsonValue arr(rapidjson::kArrayType);
  for (const auto& s : items) arr.PushBack(JsonValue(s.c_str(), a), a);
  return arr;
}

Result<bool> parse_bool_env(const char* name, const char* value) {
  std::string v = value;
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (v == "1" || v == "true" || v == "yes" || v == "on") return true;
  if (v.empty() || v == "0" || v == "false" || v == "no" || v == "off") return false;
  return make_error("invalid_configuration",
                    fmt::format("{}=\"{}\" is not a boolean (use 1/0, true/false, yes/no, on/off)", name, value));
}

}  // namespace

// ---- Setup context -------------------------------------------------------------

class HostSetupContext final : public SetupContext {
 public:
  HostSetupContext(ExtensionHost::Impl& host, Entry& entry, Runtime& runtime);

  const std::string& extension_id() const override { return entry_.id; }
  const std::string& mount_path() const override { return mount_path_; }
  CapabilitySet grants() const override { return runtime_.granted; }
  const ToolView& tools() const override { return view_; }
  ToolRegistrar& tool_registrar() override {
    require(Capability::TOOLS);
    return registrar_;
  }
  const EventPublisher& events_publisher() override {
    require(Capability::EVENTS_PUB);
    return publisher_;
  }
  const EventSubscriber& events_subscriber() override {
    require(Capability::EVENTS_SUB);
    return subscriber_;
  }
  BackgroundTasks& background() override {
    require(Capability::BACKGROUND_TASKS);
    return *runtime_.tasks;  // made by load_locked() for every runtime granted BACKGROUND_TASKS
  }
  const std::filesystem::path& static_dir() override {
    require(Capability::STATIC);
    return runtime_.static_dir;
  }
  const std::filesystem::path& extension_dir() const override { return dir_; }
  const Logger& logger() const override { return logger_; }
  Json host_status() const override;
  MetricsRegistry& metrics() override;
  const HostIntrospection& introspection() const override;

 private:
  void require(Capability c) const {
    if (runtime_.granted.contains(c)) return;
    logger_.audit("capability_denied",
                  fmt::format("extension '{}' asked for {} without the grant", entry_.id, to_string(c)),
                  fmt::format(R"({{"capability":"{}"}})", to_string(c)));
    throw CapabilityError(entry_.id, c);
  }

  ExtensionHost::Impl& host_;
  Entry& entry_;
  Runtime& runtime_;
  std::string mount_path_;
  std::filesystem::path dir_;
  ToolView view_;
  ToolRegistrar registrar_;
  EventPublisher publisher_;
  EventSubscriber subscriber_;
  Logger logger_;
};

// ---- Host --------------------------------------------------------------------

struct ExtensionHost::Impl {
  HostOptions options;
  std::shared_ptr<LogSink> sink;
  Logger logger{nullptr, ""};
  std::shared_ptr<ToolRegistry> tools;
  std::shared_ptr<EventBus> bus;
  bool require_scopes = false;
  ScopeResolver scope_resolver;
  bool started = false;
  std::atomic<bool> shut_down{false};  // set once by shutdown(); no load after it

  std::vector<std::pair<std::string, ExtensionFactory>> pending_linked;
  std::map<std::string, std::optional<CapabilitySet>> linked_approved;
  std::map<std::string, std::optional<bool>> linked_eager;

  std::vector<std::unique_ptr<Entry>> entries;                   // discovery order
  std::map<std::string, Entry*, std::less<>> by_id;              // fixed after start()
  std::vector<std::string> discovery_sources;
  std::vector<std::pair<std::string, std::string>> discovery_errors;  // file, message

  std::mutex order_mutex;
  std::vector<Entry*> load_order;

  RouteCounters host_counters;  // /ext/status and errors outside any extension

  // Business metrics: one root; each extension's "ext_{id}_" scope is made
  // once and kept for the host's lifetime, so a reload gets its metrics back.
  MetricsRegistry metrics;
  std::mutex metrics_mutex;
  std::map<std::string, std::unique_ptr<MetricsRegistry>, std::less<>> extension_metrics;
  std::unique_ptr<HostIntrospection> introspection;

  MetricsRegistry& metrics_of(const std::string& id) {
    std::lock_guard lock(metrics_mutex);
    auto& scope = extension_metrics[id];
    if (!scope) scope = metrics.scope("ext_" + id + "_");
    return *scope;
  }
  std::chrono::steady_clock::time_point start_time = std::chrono::steady_clock::now();

  Logger extension_logger(const std::string& id) const { return Logger(sink, id); }

  void add_discovery_error(const std::string& file, const std::string& message) {
    discovery_errors.emplace_back(file, message);
    logger.error("discovery_error", file.empty() ? message : file + ": " + message);
  }

  void add_entry(std::unique_ptr<Entry> entry, const std::string& where) {
    if (entry->id == "core") {  // the host's event source: an extension so named could forge it
      add_discovery_error(where, "extension id 'core' is reserved for the host (source of its events); ignored");
      logger.audit("extension_refused", "extension id 'core' is reserved",
                   fmt::format(R"({{"where":"{}"}})", json::escape(where)));
      return;
    }
    if (auto it = by_id.find(entry->id); it != by_id.end()) {
      const Entry& first = *it->second;
      std::string first_where = first.manifest ? first.manifest->file.string() : "linked into the program";
      add_discovery_error(where, fmt::format("duplicate extension id '{}': already discovered at {}; {} is ignored",
                                             entry->id, first_where, where));
      logger.audit("extension_refused", fmt::format("duplicate extension id '{}'", entry->id),
                   fmt::format(R"({{"first":"{}","second":"{}"}})", json::escape(first_where), json::escape(where)));
      return;
    }
    if (!entry->enabled) {
      entry->state.store(ExtensionState::disabled);
      entry->state_reason = "its manifest says \"enabled\": false";
    }
    by_id.emplace(entry->id, entry.get());
    entries.push_back(std::move(entry));
  }

  void discover_folder(const std::filesystem::path& dir, const std::string& source) {
    namespace fs = std::filesystem;
    std::error_code ec;
    discovery_sources.push_back(fmt::format("{}:{}", source, dir.string()));
    if (!fs::is_directory(dir, ec)) {
      add_discovery_error(dir.string(), "extension path does not exist or is not a folder");
      return;
    }
    std::vector<fs::path> manifests;
    if (fs::is_regular_file(dir / "extension.json", ec)) {
      manifests.push_back(dir / "extension.json");
    } else {
      std::vector<fs::path> children;
      for (const auto& child : fs::directory_iterator(dir, ec)) {
        if (child.is_directory(ec) && fs::is_regular_file(child.path() / "extension.json", ec)) {
          children.push_back(child.path() / "extension.json");
        }
      }
      std::sort(children.begin(), children.end());
      manifests = std::move(children);
    }
    for (const auto& file : manifests) {
      auto manifest = load_manifest(file);
      if (!manifest) {
        add_discovery_error(file.string(), manifest.error().message);
        continue;
      }
      auto entry = std::make_unique<Entry>();
      entry->id = manifest->id;
      entry->source = source;
      entry->approved = manifest->grants;
      entry->eager = manifest->eager;
      entry->enabled = manifest->enabled;
      entry->manifest = std::move(manifest).value();
      add_entry(std::move(entry), file.string());
    }
  }

  Result<void> read_environment() {
    if (!options.read_environment) return {};
    if (const char* v = std::getenv("ORDINAUT_REQUIRE_SCOPES"); v != nullptr && !options.require_scopes) {
      auto b = parse_bool_env("ORDINAUT_REQUIRE_SCOPES", v);
      if (!b) return b.error();
      require_scopes = *b;
    }
    if (const char* v = std::getenv("ORDINAUT_EXT_ENTRY_GRANTS"); v != nullptr && *v && !options.entry_grants) {
      auto doc = json::parse(v);
      if (!doc) {
        return make_error("invalid_configuration",
                          fmt::format("ORDINAUT_EXT_ENTRY_GRANTS is not valid JSON: {}", doc.error().message));
      }
      if (!doc->IsObject()) {
        return make_error("invalid_configuration",
                          "ORDINAUT_EXT_ENTRY_GRANTS must be a JSON object: {\"extension_id\": [\"ROUTES\", ...]}");
      }
      std::map<std::string, std::vector<std::string>> grants;
      for (auto& m : doc->GetObject()) {
        if (!m.value.IsArray()) {
          return make_error("invalid_configuration",
                            fmt::format("ORDINAUT_EXT_ENTRY_GRANTS: /{}: expected an array of capability names, got {}",
                                        m.name.GetString(), json::type_name(m.value)));
        }
        auto& list = grants[m.name.GetString()];
        for (rapidjson::SizeType i = 0; i < m.value.Size(); ++i) {
          const auto& g = m.value[i];
          if (!g.IsString() || !parse_capability(g.GetString())) {
            return make_error("invalid_configuration",
                              fmt::format("ORDINAUT_EXT_ENTRY_GRANTS: /{}/{}: {} is not a capability (ROUTES, TOOLS, "
                                          "EVENTS_PUB, EVENTS_SUB, BACKGROUND_TASKS, STATIC)",
                                          m.name.GetString(), i, json::dump(g)));
          }
          list.emplace_back(g.GetString());
        }
      }
      options.entry_grants = std::move(grants);
    }
    if (const char* v = std::getenv("ORDINAUT_EXT_ENTRY_EAGER"); v != nullptr && *v && !options.entry_eager) {
      auto doc = json::parse(v);
      if (!doc) {
        return make_error("invalid_configuration",
                          fmt::format("ORDINAUT_EXT_ENTRY_EAGER is not valid JSON: {}", doc.error().message));
      }
      if (!doc->IsObject()) {
        return make_error("invalid_configuration", "ORDINAUT_EXT_ENTRY_EAGER must be a JSON object: {\"id\": true}");
      }
      std::map<std::string, bool> eager;
      for (auto& m : doc->GetObject()) {
        if (!m.value.IsBool()) {
          return make_error("invalid_configuration",
                            fmt::format("ORDINAUT_EXT_ENTRY_EAGER: /{}: expected true or false, got {}",
                                        m.name.GetString(), json::type_name(m.value)));
        }
        eager[m.name.GetString()] = m.value.GetBool();
      }
      options.entry_eager = std::move(eager);
    }
    return {};
  }

  std::vector<std::filesystem::path> extension_paths() const {
    std::vector<std::filesystem::path> paths;
    if (options.read_environment) {
      if (const char* v = std::getenv("ORDINAUT_EXT_PATHS"); v != nullptr) {
        for (const auto& p : detail::split(v, ':')) {
          if (!detail::trim(p).empty()) paths.emplace_back(std::string(detail::trim(p)));
        }
      }
    }
    for (const auto& p : options.extension_paths) paths.push_back(p);
    return paths;
  }

  // REQUIRES: entry.info_mutex held.
  static void clear_reasons(Entry& entry) {
    entry.last_error.clear();
    entry.error_phase.clear();
    entry.state_reason.clear();
  }

  void record_failure(Entry& entry, std::string phase, std::string reason) {
    {
      std::lock_guard lock(entry.info_mutex);
      entry.error_phase = phase;
      entry.last_error = reason;
    }
    entry.state.store(ExtensionState::error);
    extension_logger(entry.id).error("extension_failed", reason, fmt::format(R"({{"phase":"{}"}})", phase));
  }

  // Stops and removes what a runtime started and registered: its background
  // tasks (bounded by the lifecycle timeout), event subscriptions and tools.
  void release(Entry& entry, Runtime& rt) {
    if (rt.tasks && !rt.tasks->stop_all().empty()) rt.abandoned.store(true);
    bus->unsubscribe_all(entry.id);
    tools->remove_owner(entry.id);
  }

  // REQUIRES: entry.load_mutex held.
  Result<void> load_locked(Entry& entry) {
    if (entry.runtime.load(std::memory_order_acquire) != nullptr &&
        entry.state.load() == ExtensionState::active) {
      return {};
    }
    switch (entry.state.load()) {
      case ExtensionState::disabled: {
        std::lock_guard lock(entry.info_mutex);
        return make_error("disabled", fmt::format("extension '{}' is disabled: {}", entry.id, entry.state_reason));
      }
      case ExtensionState::error: {
        std::lock_guard lock(entry.info_mutex);
        return make_error("load_failed", fmt::format("extension '{}' failed ({}): {}", entry.id, entry.error_phase,
                                                     entry.last_error));
      }
      case ExtensionState::stopped: {
        std::lock_guard lock(entry.info_mutex);
        return make_error("stopped", fmt::format("extension '{}' is stopped: {}", entry.id, entry.state_reason));
      }
      default: break;
    }
    if (shut_down.load()) {
      return make_error("stopped", fmt::format("extension '{}' is not loaded: the host has shut down", entry.id));
    }
    const auto started = std::chrono::steady_clock::now();
    entry.state.store(ExtensionState::loading);
    Logger log = extension_logger(entry.id);

    // 1. Factory.
    ExtensionFactory factory = entry.factory;
    if (!factory) {
      const Manifest& m = *entry.manifest;
      auto raw = detail::open_module(m.dir / m.module);
      if (!raw) {
        record_failure(entry, "load", raw.error().message);
        log.audit("extension_refused", raw.error().message, fmt::format(R"({{"code":"{}"}})", raw.error().code));
        return make_error("load_failed", raw.error().message);
      }
      factory = [f = *raw] { return std::unique_ptr<Extension>(f()); };
    }
    auto runtime = std::make_unique<Runtime>();
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
      entry.runtimes.push_back(std::move(runtime));  // keep module objects alive
      return make_error("load_failed", fmt::format("extension '{}': {}", entry.id, mismatch));
    }

    // 3. Grants.
    runtime->granted = runtime->requested & entry.approved;
    for (Capability c : (runtime->requested - entry.approved).list()) {
      log.audit("capability_denied",
                fmt::format("extension '{}' requested {} but it is not approved", entry.id, to_string(c)),
                fmt::format(R"({{"capability":"{}","approved":{}}})", to_string(c),
                            quote_list(entry.approved.names())));
    }
    if (runtime->granted.contains(Capability::STATIC)) {
      runtime->static_dir = entry.manifest ? entry.manifest->dir / "static" : std::filesystem::path{};
    }

    // 4. Setup and startup.
    Runtime& rt = *runtime;
    entry.runtimes.push_back(std::move(runtime));
    if (rt.granted.contains(Capability::BACKGROUND_TASKS)) {
      rt.tasks = std::make_unique<detail::TaskSupervisor>(
          entry.id, log, detail::SupervisorLimits{options.max_tasks_per_extension, options.lifecycle_timeout});
    }
    std::string setup_error;
    try {
      rt.context = std::make_unique<HostSetupContext>(*this, entry, rt);
      rt.router = rt.extension->setup(*rt.context);
    } catch (const std::exception& e) {
      setup_error = e.what();
    } catch (...) {
      setup_error = "a non-standard exception";
    }
    if (!setup_error.empty()) {
      release(entry, rt);
      record_failure(entry, "setup", fmt::format("setup() threw: {}", setup_error));
      return make_error("load_failed", fmt::format("extension '{}': setup() threw: {}", entry.id, setup_error));
    }
    if (rt.router && !rt.granted.contains(Capability::ROUTES)) {
      // A requested-but-unapproved ROUTES was audited with the grants above:
      // one record per denial.
      if (!rt.router->empty() && !rt.requested.contains(Capability::ROUTES)) {
        log.audit("capability_denied",
                  fmt::format("extension '{}' returned {} routes without the ROUTES grant; nothing is mounted",
                              entry.id, rt.router->routes().size()),
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
    auto startup = detail::run_bounded([ext = rt.extension.get()] { ext->on_startup(); }, options.lifecycle_timeout);
    if (startup.outcome != detail::BoundedRun::Outcome::returned) {
      std::string reason = startup.outcome == detail::BoundedRun::Outcome::threw
                               ? fmt::format("on_startup() threw: {}", startup.error)
                               : fmt::format("on_startup() did not return within {} ms and was abandoned",
                                             options.lifecycle_timeout.count());
      if (startup.outcome == detail::BoundedRun::Outcome::timed_out) rt.abandoned.store(true);
      release(entry, rt);
      record_failure(entry, "startup", reason);
      return make_error("load_failed", fmt::format("extension '{}': {}", entry.id, reason));
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    {
      std::lock_guard lock(entry.info_mutex);
      entry.load_ms = ms;
      clear_reasons(entry);
    }
    entry.runtime.store(&rt, std::memory_order_release);
    entry.state.store(ExtensionState::active);
    {
      std::lock_guard lock(order_mutex);
      std::erase(load_order, &entry);  // a reload moves it to the end
      load_order.push_back(&entry);
    }
    log.info("extension_loaded", fmt::format("loaded {} {} in {:.2f} ms", entry.id, rt.info.version, ms),
             fmt::format(R"({{"granted":{},"routes":{},"load_ms":{:.3f}}})", quote_list(rt.granted.names()),
                         rt.router ? rt.router->routes().size() : 0, ms));
    return {};
  }

  Result<Runtime*> ensure_loaded(Entry& entry) {
    if (Runtime* rt = entry.runtime.load(std::memory_order_acquire);
        rt != nullptr && entry.state.load(std::memory_order_acquire) == ExtensionState::active) {
      return rt;
    }
    std::lock_guard lock(entry.load_mutex);
    if (auto r = load_locked(entry); !r) return r.error();
    return entry.runtime.load(std::memory_order_acquire);
  }

  std::vector<std::string> scopes_of(const Request& request) const {
    if (scope_resolver) return scope_resolver(request);
    std::vector<std::string> scopes;
    for (const auto& s : detail::split(request.header("X-Scopes"), ',')) {
      auto t = detail::trim(s);
      if (!t.empty()) scopes.emplace_back(t);
    }
    return scopes;
  }

  Response handle(Request& request);
  Response dispatch_extension(Entry& entry, Request& request, std::string_view rest,
                              std::chrono::steady_clock::time_point started);
  Response default_health(Entry& entry, Runtime* runtime);
  Json status() const;
  Json openapi() const;
  void shutdown_entry(Entry& entry);
  // Lifecycle management; `actor` says who asked, for reasons and logs.
  void stop_locked(Entry& entry, ExtensionState next, const std::string& reason);
  Result<void> disable(Entry& entry, const std::string& actor);
  Result<void> enable(Entry& entry, const std::string& actor);
  Result<void> reload(Entry& entry, const std::string& actor);
  Response handle_admin(Request& request, std::string_view rest);
};

HostSetupContext::HostSetupContext(ExtensionHost::Impl& host, Entry& entry, Runtime& runtime)
    : host_(host),
      entry_(entry),
      runtime_(runtime),
      mount_path_("/ext/" + entry.id),
      dir_(entry.manifest ? entry.manifest->dir : std::filesystem::path{}),
      view_(*host.tools),
      registrar_(*host.tools, entry.id),
      publisher_(host.bus, entry.id),
      subscriber_(host.bus, entry.id),
      logger_(host.extension_logger(entry.id)) {}

Json HostSetupContext::host_status() const { return host_.status(); }
MetricsRegistry& HostSetupContext::metrics() { return host_.metrics_of(entry_.id); }
const HostIntrospection& HostSetupContext::introspection() const { return *host_.introspection; }

// Reads the host's own counters for observability; counts nothing itself.
class HostIntrospectionView final : public HostIntrospection {
 public:
  HostIntrospectionView(const ExtensionHost& host, const ExtensionHost::Impl& impl) : host_(host), impl_(impl) {}
  std::vector<ExtensionSnapshot> extensions() const override { return host_.snapshot(); }
  RouteMetrics host_requests() const override { return impl_.host_counters.snapshot("*", "(host)"); }
  std::vector<ToolStats> tool_stats() const override { return impl_.tools->stats(); }
  Json event_bus_health() const override { return impl_.bus->health(); }
  Json subscriber_health(std::string_view id) const override { return impl_.bus->subscriber_health(id); }
  std::vector<ExtensionTasks> background_tasks() const override {
    std::vector<ExtensionTasks> out;
    for (const auto& e : impl_.entries) {
      Runtime* rt = e->runtime.load(std::memory_order_acquire);
      if (rt == nullptr || !rt->tasks) continue;
      auto tasks = rt->tasks->list();
      if (!tasks.empty()) out.push_back(ExtensionTasks{e->id, std::move(tasks)});
    }
    return out;
  }
  const MetricsRegistry& metrics() const override { return impl_.metrics; }

 private:
  const ExtensionHost& host_;
  const ExtensionHost::Impl& impl_;
};

Response ExtensionHost::Impl::handle(Request& request) {
  const auto started = std::chrono::steady_clock::now();
  std::string_view path = request.path;
  auto finish = [&](Response r) {
    host_counters.record(r.status, std::chrono::steady_clock::now() - started);
    return r;
  };
  if (request.body.size() > options.max_body_bytes) {
    return finish(Response::error(413, "payload_too_large",
                                  fmt::format("request body of {} bytes exceeds the limit of {} bytes",
                                              request.body.size(), options.max_body_bytes),
                                  fmt::format(R"({{"limit":{}}})", options.max_body_bytes)));
  }
  if (!path.starts_with("/ext/")) {
    return finish(Response::error(404, "not_found", fmt::format("no route for {}", path)));
  }
  std::string_view after = path.substr(5);
  std::size_t slash = after.find('/');
  std::string_view id = after.substr(0, slash);
  std::string_view rest = slash == std::string_view::npos ? std::string_view{} : after.substr(slash);
  if (id == "status" && rest.empty()) {
    request.route_template = "/ext/status";
    if (request.method != "GET" && request.method != "HEAD") {
      Response r = Response::error(405, "method_not_allowed", "GET /ext/status only");
      r.headers.set("Allow", "GET");
      return finish(std::move(r));
    }
    return finish(Response::json(200, status()));
  }
  if (id == "openapi.json" && rest.empty()) {  // never an extension id: ids have no '.'
    request.route_template = "/ext/openapi.json";
    if (request.method != "GET" && request.method != "HEAD") {
      Response r = Response::error(405, "method_not_allowed", "GET /ext/openapi.json only");
      r.headers.set("Allow", "GET");
      return finish(std::move(r));
    }
    return finish(Response::json(200, openapi()));
  }
  if (id == "_admin") return finish(handle_admin(request, rest));  // no extension id starts with '_'
  auto it = by_id.find(id);
  if (it == by_id.end()) {
    std::string shown(id.substr(0, 80));
    return finish(Response::error(404, "not_found", fmt::format("no extension '{}' is discovered", json::escape(shown)),
                                  fmt::format(R"({{"extension":"{}"}})", json::escape(shown))));
  }
  return dispatch_extension(*it->second, request, rest, started);
}

// The hot path: no allocation and one clock read beyond handle()'s on a
// matched route (clock reads cost ~100 ns on some virtual machines). The
// extension's Logger is made only where something is logged.
Response ExtensionHost::Impl::dispatch_extension(Entry& entry, Request& request, std::string_view rest,
                                                 std::chrono::steady_clock::time_point started) {

  if (require_scopes) {
    const std::string needed = "ext:" + entry.id + ":routes";
    auto scopes = scopes_of(request);
    if (std::find(scopes.begin(), scopes.end(), needed) == scopes.end()) {
      extension_logger(entry.id).audit("scope_denied", fmt::format("{} {} without scope {}", request.method, request.path, needed),
                fmt::format(R"({{"required_scope":"{}","remote":"{}"}})", needed, json::escape(request.remote_addr)));
      host_counters.record(403, std::chrono::steady_clock::now() - started);
      return Response::error(403, "forbidden", fmt::format("missing scope {}", needed),
                             fmt::format(R"({{"required_scope":"{}"}})", needed));
    }
    request.scopes = std::move(scopes);
  }

  auto loaded = ensure_loaded(entry);
  if (!loaded && rest == "/health" && (request.method == "GET" || request.method == "HEAD") &&
      loaded.error().code != "disabled") {
    // Health checkers get the health shape (503, state) even when loading failed.
    Response health = default_health(entry, nullptr);
    host_counters.record(health.status, std::chrono::steady_clock::now() - started);
    return health;
  }
  if (!loaded) {
    const int status = loaded.error().code == "disabled" ? 404 : 503;
    host_counters.record(status, std::chrono::steady_clock::now() - started);
    const ExtensionState state = entry.state.load();
    std::string reason;
    {
      std::lock_guard lock(entry.info_mutex);
      reason = state == ExtensionState::error ? entry.error_phase + ": " + entry.last_error : entry.state_reason;
    }
    return Response::error(status, status == 404 ? "not_found" : "unavailable", loaded.error().message,
                           fmt::format(R"({{"extension":"{}","state":"{}","reason":"{}"}})", entry.id, to_string(state),
                                       json::escape(reason)));
  }
  Runtime& rt = **loaded;
  if (rest.empty()) {
    request.route_path = "/";
  } else {
    request.route_path.assign(rest);
  }
  request.extension_id = entry.id;

  RouteCounters* counters = &rt.unrouted;
  Response response;
  const Route* route = nullptr;
  Router::Match match;
  if (rt.router) match = rt.router->match(request.method, request.route_path, request.params);
  if (match.route_index >= 0) {
    route = &rt.router->routes()[static_cast<std::size_t>(match.route_index)];
    counters = rt.route_counters[static_cast<std::size_t>(match.route_index)].get();
    request.route_template = route->path;
  }

  if (route == nullptr && request.route_path == "/health" && (request.method == "GET" || request.method == "HEAD")) {
    request.route_template = "/health";
    response = default_health(entry, &rt);
  } else if (route == nullptr) {
    std::optional<Response> file;
    if (!rt.static_dir.empty() && (request.method == "GET" || request.method == "HEAD")) {
      file = detail::serve_static(rt.static_dir, request.route_path, request);
    }
    if (file) {
      response = std::move(*file);
    } else if (match.path_matched) {
      response = Response::error(405, "method_not_allowed",
                                 fmt::format("{} is not allowed on {}; allowed: {}", request.method, request.path,
                                             match.allow));
      response.headers.set("Allow", match.allow);
    } else if (!rt.router) {
      response = Response::error(404, "not_found",
                                 fmt::format("extension '{}' mounts no routes{}", entry.id,
                                             rt.granted.contains(Capability::ROUTES) ? "" : " (ROUTES not granted)"),
                                 rt.granted.contains(Capability::ROUTES) ? "" : R"({"missing_capability":"ROUTES"})");
    } else {
      response = Response::error(404, "not_found", fmt::format("no route {} {}", request.method, request.path));
    }
  } else {
    bool valid = true;
    if (route->request_schema) {
      auto body = request.json();
      if (!body) {
        valid = false;
        response = Response::error(400, "bad_request", "request body is not valid JSON: " + body.error().message);
      } else if (auto v = route->request_schema->validate(*body); !v) {
        valid = false;
        response = Response::error(400, "bad_request", "request body: " + v.error().message,
                                   fmt::format(R"({{"pointer":"{}"}})", json::escape(v.error().pointer)));
      }
    }
    if (valid) {
      try {
        response = route->handler(request);
      } catch (const CapabilityError& e) {
        response = Response::error(403, "forbidden", e.what(),
                                   fmt::format(R"({{"missing_capability":"{}"}})", to_string(e.capability())));
      } catch (const std::exception& e) {
        {
          std::lock_guard lock(entry.info_mutex);
          entry.last_error = fmt::format("{} {}: {}", route->method, route->path, e.what());
          entry.error_phase = "request";
        }
        extension_logger(entry.id).error("handler_failed", fmt::format("{} {} threw: {}", request.method, route->path, e.what()));
        response = Response::error(500, "internal_error",
                                   fmt::format("extension '{}' failed while handling {} {}", entry.id, request.method,
                                               route->path));
      } catch (...) {
        extension_logger(entry.id).error("handler_failed", fmt::format("{} {} threw a non-standard exception", request.method, route->path));
        response = Response::error(500, "internal_error",
                                   fmt::format("extension '{}' failed while handling {} {}", entry.id, request.method,
                                               route->path));
      }
      if (response.stream) {
        // Exceptions inside a stream end the stream, never the server.
        response.stream = [producer = std::move(response.stream), log = extension_logger(entry.id),
                           path = route->path](StreamSink& sink) {
          try {
            producer(sink);
          } catch (const std::exception& e) {
            log.error("stream_failed", fmt::format("stream of {} threw: {}", path, e.what()));
          } catch (...) {
            log.error("stream_failed", fmt::format("stream of {} threw", path));
          }
        };
      }
    }
  }
  counters->record(response.status, std::chrono::steady_clock::now() - started);
  return response;
}

Response ExtensionHost::Impl::default_health(Entry& entry, Runtime* runtime) {
  Json doc = json::object();
  auto& a = doc.GetAllocator();
  const ExtensionState state = entry.state.load();
  std::string status = state == ExtensionState::active ? "ok" : "unavailable";
  JsonValue checks(rapidjson::kObjectType);
  if (runtime != nullptr && state == ExtensionState::active) {
    try {
      Json custom = runtime->extension->health_checks();
      if (custom.IsObject()) {
        for (auto& m : custom.GetObject()) {
          auto s = json::get_string(m.value, "status");
          if (!s || *s != "ok") status = "degraded";
          checks.AddMember(JsonValue(m.name, a), JsonValue(m.value, a), a);
        }
      }
    } catch (const std::exception& e) {
      status = "degraded";
      JsonValue c(rapidjson::kObjectType);
      c.AddMember("status", "error", a);
      c.AddMember("error", JsonValue(e.what(), a), a);
      checks.AddMember("health_checks", c, a);
    }
    // One check per background task, "task:{name}": running or ended cleanly
    // is "ok"; backing off, failed or abandoned degrades the extension.
    if (runtime->tasks) {
      for (const auto& t : runtime->tasks->list()) {
        const bool ok = !t.abandoned && (t.state == TaskState::running || t.state == TaskState::stopped);
        if (!ok) status = "degraded";
        JsonValue c = detail::task_status_json(t, a);
        c.AddMember("status", JsonValue(ok ? "ok" : t.abandoned ? "abandoned" : to_string(t.state), a), a);
        checks.AddMember(JsonValue(("task:" + t.name).c_str(), a), c, a);
      }
    }
    // "events": the bus's state and this extension's subscriptions (streams,
    // groups, pending, lag); a disconnected bus degrades its users.
    if (runtime->granted.contains(Capability::EVENTS_PUB) || runtime->granted.contains(Capability::EVENTS_SUB)) {
      Json bus_health = bus->health();
      Json subs = bus->subscriber_health(entry.id);
      const bool connected = !bus_health.HasMember("connected") || bus_health["connected"].IsTrue();
      if (!connected) status = "degraded";
      JsonValue c(rapidjson::kObjectType);
      c.AddMember("status", JsonValue(connected ? "ok" : "error", a), a);
      c.AddMember("bus", bus_health.HasMember("kind") ? JsonValue(bus_health["kind"], a) : JsonValue(), a);
      c.AddMember("connected", connected, a);
      if (!connected && bus_health.HasMember("last_error")) {
        c.AddMember("last_error", JsonValue(bus_health["last_error"], a), a);
      }
      c.AddMember("subscriptions", JsonValue(subs, a), a);
      checks.AddMember("events", c, a);
    }
  }
  JsonValue st(rapidjson::kObjectType);
  st.AddMember("status", JsonValue(state == ExtensionState::active ? "ok" : "error", a), a);
  st.AddMember("state", JsonValue(to_string(state), a), a);
  checks.AddMember("extension", st, a);
  doc.AddMember("status", JsonValue(status.c_str(), a), a);
  doc.AddMember("timestamp", JsonValue(detail::rfc3339(detail::now_ms()).c_str(), a), a);
  std::string version;
  if (runtime != nullptr) {
    version = runtime->info.version;
  } else {
    std::lock_guard lock(entry.info_mutex);  // the manifest may be replaced by reload()
    version = entry.manifest ? entry.manifest->version : "";
  }
  doc.AddMember("version", JsonValue(version.c_str(), a), a);
  doc.AddMember("checks", checks, a);
  return Response::json(status == "unavailable" ? 503 : 200, doc);
}

Json ExtensionHost::Impl::openapi() const {
  std::vector<detail::OpenApiExtension> list;
  for (const auto& e : entries) {
    detail::OpenApiExtension x;
    x.id = e->id;
    const ExtensionState state = e->state.load();
    x.state = to_string(state);
    Runtime* rt = e->runtime.load(std::memory_order_acquire);
    if (rt != nullptr && state == ExtensionState::active) {
      x.name = rt->info.name;
      x.version = rt->info.version;
      x.description = rt->info.description;
      x.router = rt->router ? &*rt->router : nullptr;
      x.has_health_route = rt->has_health_route;
    } else {
      std::lock_guard lock(e->info_mutex);  // the manifest may be replaced by reload()
      if (e->manifest) {
        x.name = e->manifest->name;
        x.version = e->manifest->version;
        x.description = e->manifest->description;
      }
    }
    list.push_back(std::move(x));
  }
  return detail::openapi_document(list, require_scopes);
}

Json ExtensionHost::Impl::status() const {
  Json doc = json::object();
  auto& a = doc.GetAllocator();
  JsonValue exts(rapidjson::kObjectType);
  std::uint64_t loaded = 0, failed = 0;
  for (const auto& e : entries) {
    const ExtensionState state = e->state.load();
    Runtime* rt = e->runtime.load(std::memory_order_acquire);
    if (state == ExtensionState::active) ++loaded;
    if (state == ExtensionState::error) ++failed;
    JsonValue x(rapidjson::kObjectType);
    x.AddMember("state", JsonValue(to_string(state), a), a);
    // Held up to the error fields: reload and enable change the manifest fields.
    std::unique_lock info_lock(e->info_mutex);
    JsonValue info(rapidjson::kObjectType);
    if (rt != nullptr) {
      info.AddMember("id", JsonValue(rt->info.id.c_str(), a), a);
      info.AddMember("name", JsonValue(rt->info.name.c_str(), a), a);
      info.AddMember("version", JsonValue(rt->info.version.c_str(), a), a);
      info.AddMember("description", JsonValue(rt->info.description.c_str(), a), a);
    } else if (e->manifest) {
      info.AddMember("id", JsonValue(e->manifest->id.c_str(), a), a);
      info.AddMember("name", JsonValue(e->manifest->name.c_str(), a), a);
      info.AddMember("version", JsonValue(e->manifest->version.c_str(), a), a);
      info.AddMember("description", JsonValue(e->manifest->description.c_str(), a), a);
    } else {
      info.AddMember("id", JsonValue(e->id.c_str(), a), a);
    }
    x.AddMember("info", info, a);
    JsonValue caps(rapidjson::kObjectType);
    caps.AddMember("approved", string_array(e->approved.names(), a), a);
    if (rt != nullptr) {
      caps.AddMember("requested", string_array(rt->requested.names(), a), a);
      caps.AddMember("granted", string_array(rt->granted.names(), a), a);
      caps.AddMember("denied", string_array((rt->requested - rt->granted).names(), a), a);
    }
    x.AddMember("capabilities", caps, a);
    x.AddMember("grants", string_array(rt ? rt->granted.names() : std::vector<std::string>{}, a), a);
    x.AddMember("source", JsonValue(e->source.c_str(), a), a);
    x.AddMember("path", JsonValue(e->manifest ? e->manifest->file.string().c_str() : "", a), a);
    x.AddMember("eager", e->eager, a);
    x.AddMember("enabled", e->enabled, a);
    {
      if (rt != nullptr && state == ExtensionState::active) {
        x.AddMember("loaded_ms", e->load_ms, a);
      } else {
        x.AddMember("loaded_ms", JsonValue(rapidjson::kNullType), a);
      }
      x.AddMember("last_error", e->last_error.empty() ? JsonValue(rapidjson::kNullType) : JsonValue(e->last_error.c_str(), a), a);
      x.AddMember("error_phase", e->error_phase.empty() ? JsonValue(rapidjson::kNullType) : JsonValue(e->error_phase.c_str(), a), a);
      // Why it is disabled or stopped ("disabled through the admin API ...").
      x.AddMember("reason", e->state_reason.empty() ? JsonValue(rapidjson::kNullType) : JsonValue(e->state_reason.c_str(), a), a);
      info_lock.unlock();
    }
    JsonValue metrics(rapidjson::kObjectType);
    std::uint64_t requests = 0, errors = 0;
    double seconds = 0;
    JsonValue routes(rapidjson::kArrayType);
    if (rt != nullptr) {
      auto add_route = [&](const RouteCounters& c, const std::string& method, const std::string& path) {
        RouteMetrics m = c.snapshot(method, path);
        requests += m.requests;
        errors += m.errors;
        seconds += m.seconds_total;
        if (m.requests == 0) return;
        JsonValue r(rapidjson::kObjectType);
        r.AddMember("method", JsonValue(method.c_str(), a), a);
        r.AddMember("route", JsonValue(path.c_str(), a), a);
        r.AddMember("requests", m.requests, a);
        r.AddMember("errors", m.errors, a);
        r.AddMember("seconds_total", m.seconds_total, a);
        routes.PushBack(r, a);
      };
      if (rt->router) {
        for (std::size_t i = 0; i < rt->router->routes().size(); ++i) {
          add_route(*rt->route_counters[i], rt->router->routes()[i].method, rt->router->routes()[i].path);
        }
      }
      add_route(rt->unrouted, "*", "(unrouted)");
    }
    metrics.AddMember("requests", requests, a);
    metrics.AddMember("errors", errors, a);
    metrics.AddMember("seconds_total", seconds, a);
    metrics.AddMember("routes", routes, a);
    if (rt != nullptr) {
      std::size_t tools_count = 0;
      for (const auto& t : tools->stats()) tools_count += t.owner == e->id ? 1 : 0;
      metrics.AddMember("tools", static_cast<std::uint64_t>(tools_count), a);
      Json subs = bus->subscriber_health(e->id);
      metrics.AddMember("subscriptions", JsonValue(subs, a), a);
    }
    x.AddMember("metrics", metrics, a);
    JsonValue tasks(rapidjson::kArrayType);
    if (rt != nullptr && rt->tasks) {
      for (const auto& t : rt->tasks->list()) tasks.PushBack(detail::task_status_json(t, a), a);
    }
    x.AddMember("tasks", tasks, a);
    exts.AddMember(JsonValue(e->id.c_str(), a), x, a);
  }
  doc.AddMember("extensions", exts, a);
  doc.AddMember("discovery_sources", string_array(discovery_sources, a), a);
  JsonValue errors(rapidjson::kArrayType);
  for (const auto& [file, message] : discovery_errors) {
    JsonValue err(rapidjson::kObjectType);
    err.AddMember("file", JsonValue(file.c_str(), a), a);
    err.AddMember("error", JsonValue(message.c_str(), a), a);
    errors.PushBack(err, a);
  }
  doc.AddMember("discovery_errors", errors, a);
  doc.AddMember("total_extensions", static_cast<std::uint64_t>(entries.size()), a);
  doc.AddMember("loaded_extensions", loaded, a);
  doc.AddMember("failed_extensions", failed, a);
  doc.AddMember("require_scopes", require_scopes, a);
  Json bus_health = bus->health();
  doc.AddMember("event_bus", JsonValue(bus_health, a), a);
  return doc;
}

void ExtensionHost::Impl::shutdown_entry(Entry& entry) {
  std::lock_guard lock(entry.load_mutex);
  if (entry.state.load() != ExtensionState::active) return;
  stop_locked(entry, ExtensionState::stopped, "the host is shutting down");
}

// ---- Lifecycle management ------------------------------------------------------

// Takes an active runtime down in the order of R6: on_shutdown() (bounded by
// the lifecycle timeout), background tasks (stop requested, bounded wait, then
// abandoned), event subscriptions, tools, and last the routes: the state
// leaves `active`, so the next request gets the host's answer with `reason`.
// The Runtime itself stays alive (entry.runtimes) for requests still in it.
// REQUIRES: entry.load_mutex held.
void ExtensionHost::Impl::stop_locked(Entry& entry, ExtensionState next, const std::string& reason) {
  Logger log = extension_logger(entry.id);
  Runtime* rt = entry.runtime.load(std::memory_order_acquire);
  const bool active = rt != nullptr && entry.state.load() == ExtensionState::active;
  std::string problem;
  if (active) {
    auto outcome = detail::run_bounded([ext = rt->extension.get()] { ext->on_shutdown(); }, options.lifecycle_timeout);
    if (outcome.outcome == detail::BoundedRun::Outcome::threw) {
      problem = fmt::format("on_shutdown() threw: {}", outcome.error);
      log.error("shutdown_failed", problem);
    } else if (outcome.outcome == detail::BoundedRun::Outcome::timed_out) {
      rt->abandoned.store(true);
      problem = fmt::format("on_shutdown() did not return within {} ms and was abandoned",
                            options.lifecycle_timeout.count());
      log.error("shutdown_timeout", problem,
                fmt::format(R"({{"timeout_ms":{}}})", options.lifecycle_timeout.count()));
    }
    release(entry, *rt);
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
  if (next != ExtensionState::stopped) {
    std::lock_guard lock(order_mutex);
    std::erase(load_order, &entry);
  }
  if (active) {
    log.info("extension_stopped", fmt::format("{}: on_shutdown() run, tasks stopped, subscriptions and tools "
                                              "removed, routes unmounted", reason),
             fmt::format(R"({{"state":"{}"}})", to_string(next)));
  }
}

Result<void> ExtensionHost::Impl::disable(Entry& entry, const std::string& actor) {
  std::lock_guard lock(entry.load_mutex);
  if (shut_down.load()) return make_error("host_stopped", "the host has shut down; extensions can no longer change");
  if (entry.state.load() == ExtensionState::disabled) return {};
  stop_locked(entry, ExtensionState::disabled, "disabled by " + actor);
  std::lock_guard info(entry.info_mutex);
  entry.enabled = false;
  return {};
}

// Back to the state it has after start(): eager extensions load now, lazy ones
// on their next use. Also the way to retry an extension in `error`.
Result<void> ExtensionHost::Impl::enable(Entry& entry, const std::string& actor) {
  std::lock_guard lock(entry.load_mutex);
  if (shut_down.load()) return make_error("host_stopped", "the host has shut down; extensions can no longer change");
  if (entry.state.load() == ExtensionState::active) return {};
  bool eager = false;
  {
    std::lock_guard info(entry.info_mutex);
    entry.enabled = true;
    eager = entry.eager;
    clear_reasons(entry);
  }
  entry.runtime.store(nullptr, std::memory_order_release);  // the old one lives on in entry.runtimes
  entry.state.store(ExtensionState::discovered);
  extension_logger(entry.id).info("extension_enabled", "enabled by " + actor);
  if (eager) return load_locked(entry);
  return {};
}

// Re-reads the manifest and sets the extension up again with it. A manifest
// that cannot be read or is invalid changes nothing: the running extension
// keeps serving and the error is returned. A valid one replaces the old
// runtime: on failure the extension is in `error` with the phase and reason.
Result<void> ExtensionHost::Impl::reload(Entry& entry, const std::string& actor) {
  std::lock_guard lock(entry.load_mutex);
  if (shut_down.load()) return make_error("host_stopped", "the host has shut down; extensions can no longer change");
  Logger log = extension_logger(entry.id);
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
    clear_reasons(entry);
  }
  entry.runtime.store(nullptr, std::memory_order_release);  // the old one lives on in entry.runtimes
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
  auto loaded = load_locked(entry);
  if (loaded) log.info("extension_reloaded", "manifest re-read and extension set up again by " + actor);
  return loaded;
}

Response ExtensionHost::Impl::handle_admin(Request& request, std::string_view rest) {
  static constexpr std::string_view kUsage = "POST /ext/_admin/extensions/{id}/enable|disable|reload";
  const std::string remote = json::escape(request.remote_addr);
  if (require_scopes) {
    auto scopes = scopes_of(request);
    if (std::find(scopes.begin(), scopes.end(), "ext:admin") == scopes.end()) {
      logger.audit("admin_denied", fmt::format("{} {} without scope ext:admin", request.method, request.path),
                   fmt::format(R"({{"required_scope":"ext:admin","remote":"{}"}})", remote));
      return Response::error(403, "forbidden", "missing scope ext:admin", R"({"required_scope":"ext:admin"})");
    }
  }
  auto parts = detail::split_path_view(rest);
  if (parts.size() != 3 || parts[0] != "extensions" ||
      (parts[2] != "enable" && parts[2] != "disable" && parts[2] != "reload")) {
    return Response::error(404, "not_found",
                           fmt::format("no admin endpoint {}; use {}", json::escape(request.path.substr(0, 200)), kUsage));
  }
  const std::string_view action = parts[2];
  if (request.method != "POST") {
    Response r = Response::error(405, "method_not_allowed",
                                 fmt::format("{} is not allowed on {}; use POST", request.method, request.path));
    r.headers.set("Allow", "POST");
    return r;
  }
  auto it = by_id.find(parts[1]);
  if (it == by_id.end()) {
    std::string shown(parts[1].substr(0, 80));
    return Response::error(404, "not_found", fmt::format("no extension '{}' is discovered", json::escape(shown)),
                           fmt::format(R"({{"extension":"{}"}})", json::escape(shown)));
  }
  Entry& entry = *it->second;
  const std::string actor = fmt::format("the admin API (from {})", request.remote_addr.empty() ? "in-process"
                                                                                                : request.remote_addr);
  Result<void> result = action == "enable" ? enable(entry, actor) : action == "disable" ? disable(entry, actor)
                                                                                          : reload(entry, actor);
  const ExtensionState state = entry.state.load();
  std::string reason, last_error, phase;
  {
    std::lock_guard lock(entry.info_mutex);
    reason = entry.state_reason;
    last_error = entry.last_error;
    phase = entry.error_phase;
  }
  logger.audit("admin_action",
               fmt::format("{} of extension '{}' {}", action, entry.id,
                           result ? "done" : "failed: " + result.error().message),
               fmt::format(R"({{"action":"{}","extension":"{}","remote":"{}","ok":{},"code":"{}","state":"{}"}})",
                           action, entry.id, remote, result.ok(), result ? "" : json::escape(result.error().code),
                           to_string(state)));
  if (!result) {
    const Error& e = result.error();
    int status = 409;  // the extension could not be brought to the state asked for
    if (e.code == "invalid_json" || e.code == "invalid_manifest" || e.code == "unreadable_manifest") status = 422;
    return Response::error(status, e.code, e.message,
                           fmt::format(R"({{"extension":"{}","action":"{}","state":"{}","file":"{}","pointer":"{}"}})",
                                       entry.id, action, to_string(state), json::escape(e.file),
                                       json::escape(e.pointer)));
  }
  Json doc = json::object();
  auto& a = doc.GetAllocator();
  doc.AddMember("extension", JsonValue(entry.id.c_str(), a), a);
  doc.AddMember("action", JsonValue(std::string(action).c_str(), a), a);
  doc.AddMember("state", JsonValue(to_string(state), a), a);
  doc.AddMember("reason", reason.empty() ? JsonValue(rapidjson::kNullType) : JsonValue(reason.c_str(), a), a);
  doc.AddMember("last_error", last_error.empty() ? JsonValue(rapidjson::kNullType) : JsonValue(last_error.c_str(), a), a);
  doc.AddMember("error_phase", phase.empty() ? JsonValue(rapidjson::kNullType) : JsonValue(phase.c_str(), a), a);
  return Response::json(200, doc);
}

// ---- Public API --------------------------------------------------------------

ExtensionHost::ExtensionHost(HostOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->sink = std::make_shared<LogSink>(impl_->options.log_sink ? impl_->options.log_sink : stderr_log_sink());
  impl_->logger = Logger(impl_->sink, "");
  impl_->tools = impl_->options.tool_registry ? impl_->options.tool_registry : std::make_shared<ToolRegistry>();
  impl_->bus = impl_->options.event_bus ? impl_->options.event_bus : make_memory_event_bus();
  impl_->require_scopes = impl_->options.require_scopes.value_or(false);
  impl_->scope_resolver = impl_->options.scope_resolver;
  impl_->introspection = std::make_unique<HostIntrospectionView>(*this, *impl_);
}

ExtensionHost::~ExtensionHost() {
  shutdown();
  impl_->tools->set_resolver(nullptr);
  if (!impl_->options.event_bus) impl_->bus->shutdown();
  // A runtime whose code may still run on an abandoned thread (a hung
  // on_startup/on_shutdown or task) is never freed under it: it moves to a
  // process-wide list that is never destroyed (modules are never unloaded
  // either), so it stays reachable and valid for as long as that thread runs.
  for (auto& entry : impl_->entries) {
    for (auto& rt : entry->runtimes) {
      if (rt->abandoned.load() || (rt->tasks && rt->tasks->has_abandoned())) park_abandoned(std::move(rt));
    }
  }
}

void ExtensionHost::add_linked(std::string id, ExtensionFactory factory, std::optional<CapabilitySet> approved,
                               std::optional<bool> eager) {
  impl_->linked_approved[id] = approved;
  impl_->linked_eager[id] = eager;
  impl_->pending_linked.emplace_back(std::move(id), std::move(factory));
}

Result<void> ExtensionHost::start() {
  Impl& h = *impl_;
  if (h.started) return make_error("already_started", "ExtensionHost::start() was already called");
  if (auto env = h.read_environment(); !env) {
    h.logger.error("invalid_configuration", env.error().message);
    return env;
  }
  h.started = true;
  for (const auto& dir : h.options.builtin_dirs) h.discover_folder(dir, "builtin");
  for (const auto& dir : h.extension_paths()) h.discover_folder(dir, "path");

  std::vector<std::pair<std::string, ExtensionFactory>> linked = h.pending_linked;
  if (h.options.use_registered_extensions) {
    std::lock_guard lock(registered_mutex());
    for (const auto& r : registered_extensions()) linked.push_back(r);
  }
  if (!linked.empty()) h.discovery_sources.emplace_back("linked");
  for (auto& [id, factory] : linked) {
    if (!is_extension_id(id)) {
      h.add_discovery_error("linked:" + id, fmt::format("linked-in extension id '{}' is invalid: use [a-z][a-z0-9_]{{0,63}}", id));
      continue;
    }
    auto entry = std::make_unique<Entry>();
    entry->id = id;
    entry->source = "linked";
    entry->factory = factory;
    if (auto it = h.linked_approved.find(id); it != h.linked_approved.end() && it->second) {
      entry->approved = *it->second;
    } else if (h.options.entry_grants) {
      if (auto g = h.options.entry_grants->find(id); g != h.options.entry_grants->end()) {
        for (const auto& name : g->second) {
          if (auto c = parse_capability(name)) entry->approved.insert(*c);
        }
      }
    }
    if (auto it = h.linked_eager.find(id); it != h.linked_eager.end() && it->second) {
      entry->eager = *it->second;
    } else if (h.options.entry_eager) {
      if (auto e = h.options.entry_eager->find(id); e != h.options.entry_eager->end()) entry->eager = e->second;
    }
    h.add_entry(std::move(entry), "linked:" + id);
  }

  h.tools->set_resolver([this](std::string_view name) {
    // "ext.{id}.{tool}": load {id} lazily on the first call of one of its tools.
    if (!name.starts_with("ext.")) return;
    std::string_view rest = name.substr(4);
    auto it = impl_->by_id.find(rest.substr(0, rest.find('.')));
    if (it != impl_->by_id.end()) (void)impl_->ensure_loaded(*it->second);
  });

  for (auto& entry : h.entries) {
    if (entry->eager && entry->enabled) (void)h.ensure_loaded(*entry);
  }
  h.logger.info("host_started",
                fmt::format("{} extensions discovered, {} loaded, {} discovery errors", h.entries.size(),
                            h.load_order.size(), h.discovery_errors.size()));
  return {};
}

void ExtensionHost::shutdown() {
  Impl& h = *impl_;
  if (!h.started || h.shut_down.exchange(true)) return;
  h.logger.info("host_stopping", "shutting extensions down in reverse load order");
  std::vector<Entry*> order;
  {
    std::lock_guard lock(h.order_mutex);
    order = h.load_order;
  }
  for (auto it = order.rbegin(); it != order.rend(); ++it) h.shutdown_entry(**it);
  // A lazy load that was under way while the order was copied has finished by
  // now (shutdown_entry waits for its lock); no load starts after shut_down.
  for (auto& entry : h.entries) h.shutdown_entry(*entry);
}

Result<void> ExtensionHost::enable(std::string_view id) {
  auto it = impl_->by_id.find(id);
  if (it == impl_->by_id.end()) return make_error("not_found", fmt::format("no extension '{}' is discovered", id));
  return impl_->enable(*it->second, "the host application");
}

Result<void> ExtensionHost::disable(std::string_view id) {
  auto it = impl_->by_id.find(id);
  if (it == impl_->by_id.end()) return make_error("not_found", fmt::format("no extension '{}' is discovered", id));
  return impl_->disable(*it->second, "the host application");
}

Result<void> ExtensionHost::reload(std::string_view id) {
  auto it = impl_->by_id.find(id);
  if (it == impl_->by_id.end()) return make_error("not_found", fmt::format("no extension '{}' is discovered", id));
  return impl_->reload(*it->second, "the host application");
}

Response ExtensionHost::handle(Request& request) {
  try {
    return impl_->handle(request);
  } catch (const std::exception& e) {
    impl_->logger.error("dispatch_failed", e.what());
    return Response::error(500, "internal_error", "the extension host failed to handle the request");
  }
}

Result<void> ExtensionHost::load(std::string_view id) {
  auto it = impl_->by_id.find(id);
  if (it == impl_->by_id.end()) return make_error("not_found", fmt::format("no extension '{}' is discovered", id));
  auto r = impl_->ensure_loaded(*it->second);
  if (!r) return r.error();
  return {};
}

Json ExtensionHost::status() const { return impl_->status(); }

std::vector<ExtensionSnapshot> ExtensionHost::snapshot() const {
  std::vector<ExtensionSnapshot> out;
  for (const auto& e : impl_->entries) {
    ExtensionSnapshot s;
    s.id = e->id;
    s.state = e->state.load();
    s.source = e->source;
    Runtime* rt = e->runtime.load(std::memory_order_acquire);
    {
      std::lock_guard lock(e->info_mutex);  // the manifest may be replaced by reload()
      s.path = e->manifest ? e->manifest->file.string() : "";
      s.version = rt ? rt->info.version : e->manifest ? e->manifest->version : "";
      s.load_ms = e->load_ms;
      s.last_error = e->last_error;
      s.error_phase = e->error_phase;
      s.state_reason = e->state_reason;
    }
    if (rt != nullptr && rt->tasks) s.tasks = rt->tasks->list();
    if (rt != nullptr) {
      if (rt->router) {
        for (std::size_t i = 0; i < rt->router->routes().size(); ++i) {
          s.routes.push_back(rt->route_counters[i]->snapshot(rt->router->routes()[i].method, rt->router->routes()[i].path));
        }
      }
      s.routes.push_back(rt->unrouted.snapshot("*", "(unrouted)"));
      for (const auto& r : s.routes) {
        s.requests += r.requests;
        s.errors += r.errors;
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

ToolRegistry& ExtensionHost::tools() { return *impl_->tools; }
std::shared_ptr<EventBus> ExtensionHost::event_bus() const { return impl_->bus; }
Result<std::string> ExtensionHost::publish(std::string_view topic, const JsonValue& payload) {
  return impl_->bus->publish(topic, "core", payload);
}
const Logger& ExtensionHost::logger() const { return impl_->logger; }
bool ExtensionHost::require_scopes() const { return impl_->require_scopes; }

void register_linked_extension(std::string id, ExtensionFactory factory) {
  std::lock_guard lock(registered_mutex());
  registered_extensions().emplace_back(std::move(id), std::move(factory));
}

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
