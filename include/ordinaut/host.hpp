// ExtensionHost: discovers, loads, mounts and serves extensions.
//
// A host application creates one ExtensionHost, calls start(), and hands every
// request whose path starts with "/ext" to handle(). The host answers
//   GET /ext/status          discovered extensions, state, grants, metrics, tasks
//   GET /ext/{id}/health     the extension's health (a default when it has none)
//   *   /ext/{id}/...        the extension's routes (and static/ with STATIC)
//   POST /ext/_admin/extensions/{id}/enable|disable|reload
//                            management at run time (no extension id starts
//                            with '_'); needs scope ext:admin when scopes are
//                            required, and every call is audit-logged
// and loads a lazy extension on its first request (or first call of one of its
// tools), serving that request itself.
//
// Lifecycle of an extension (state in /ext/status): discovered → loading →
// active; `error` (with the phase and reason) when loading, setup() or
// on_startup() fails; `disabled` by its manifest or by disable(); `stopped`
// after shutdown(). on_startup() and on_shutdown() run on their own thread and
// are abandoned after HostOptions::lifecycle_timeout. Taking an extension down
// (disable, reload, shutdown) runs, in this order: on_shutdown(), stop of its
// background tasks, cancellation of its event subscriptions, removal of its
// tools, unmounting of its routes. Requests that were already inside the
// extension finish on the objects they started with: a runtime is freed when
// the last request, stream or tool call inside it ends (and never when a
// thread running its code was abandoned).
//
// Discovery sources, in order: the built-in folders, ORDINAUT_EXT_PATHS and
// HostOptions::extension_paths (each a folder holding extension.json, or a
// folder of such folders), then extensions linked into the program
// (ORDINAUT_REGISTER_EXTENSION or add_linked()). The first of two equal ids wins;
// the second is refused and reported in /ext/status.
//
// Modules are loaded with dlopen and never unloaded. A host that loads modules
// must link the shared libordinaut, so that host and modules share one copy.
//
// Thread safety: handle(), status(), snapshot(), load(), enable(), disable()
// and reload() are safe from many threads; start() and shutdown() must not run
// concurrently with each other, and the host must not be destroyed while
// another thread is inside one of its methods.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ordinaut/auth.hpp"
#include "ordinaut/background.hpp"
#include "ordinaut/capability.hpp"
#include "ordinaut/events.hpp"
#include "ordinaut/extension.hpp"
#include "ordinaut/http.hpp"
#include "ordinaut/logging.hpp"
#include "ordinaut/result.hpp"
#include "ordinaut/prompts.hpp"
#include "ordinaut/resources.hpp"
#include "ordinaut/tools.hpp"
#include "ordinaut/version.hpp"

namespace ordinaut::detail {
struct HostBenchAccess;  // benchmarks only (lib/host/bench_access.hpp)
}  // namespace ordinaut::detail

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

/// An extension's lifecycle state, as /ext/status shows it (see the top of this header).
enum class ExtensionState { discovered, loading, active, error, disabled, stopped };
/// "discovered", "loading", "active", "error", "disabled", "stopped".
const char* to_string(ExtensionState state) noexcept;

/// Makes a new instance of a linked-in extension.
using ExtensionFactory = std::function<std::unique_ptr<Extension>()>;

/// Returns the scopes a request carries. The default reads the comma-separated
/// X-Scopes header; a production host should derive scopes from something a
/// client cannot simply assert (a verified bearer token, mTLS identity).
using ScopeResolver = std::function<std::vector<std::string>(const Request&)>;

/// Everything an ExtensionHost is configured with; see docs/configuration.md.
struct HostOptions {
  /// Folders of built-in extensions (each holds extension folders).
  std::vector<std::filesystem::path> builtin_dirs;
  /// More extension paths, searched after ORDINAUT_EXT_PATHS.
  std::vector<std::filesystem::path> extension_paths;
  /// Read ORDINAUT_EXT_PATHS, ORDINAUT_EXT_ENTRY_GRANTS, ORDINAUT_EXT_ENTRY_EAGER
  /// and ORDINAUT_REQUIRE_SCOPES. Values set below take precedence.
  bool read_environment = true;
  /// Require scope ext:{id}:routes for /ext/{id}/... and ext:admin for
  /// /ext/_admin/...; unset: ORDINAUT_REQUIRE_SCOPES, else off.
  std::optional<bool> require_scopes;
  /// Approved capabilities of linked-in extensions, by id (names as in manifests).
  std::optional<std::map<std::string, std::vector<std::string>>> entry_grants;
  /// Eagerness of linked-in extensions, by id.
  std::optional<std::map<std::string, bool>> entry_eager;
  /// The caller's scopes when no authenticator is set; default: the X-Scopes
  /// header (comma-separated), for development.
  ScopeResolver scope_resolver;
  /// Where log and audit records go; default: JSON lines on stderr.
  LogSink log_sink;
  /// Shared tool registry; the host creates one when null.
  std::shared_ptr<ToolRegistry> tool_registry;
  /// Shared resource registry; the host creates one when null.
  std::shared_ptr<ResourceRegistry> resource_registry;
  /// Shared prompt registry; the host creates one when null.
  std::shared_ptr<PromptRegistry> prompt_registry;
  /// Event bus; the host creates an in-memory bus when null.
  std::shared_ptr<EventBus> event_bus;
  /// Largest request body handle() accepts (413 above it).
  std::size_t max_body_bytes = 1 << 20;
  /// Include registrations made with ORDINAUT_REGISTER_EXTENSION.
  bool use_registered_extensions = true;
  /// How long on_startup(), on_shutdown() and the stop of an extension's
  /// background tasks may take each before the host stops waiting and abandons
  /// them. Zero or less waits without limit.
  std::chrono::milliseconds lifecycle_timeout{5000};
  /// Live background tasks one extension may run ("task_limit" beyond).
  std::size_t max_tasks_per_extension = 32;
  /// Authentication (auth.hpp). When set, every request under /ext must prove
  /// who sends it: 401 without accepted credentials, scopes come only from the
  /// Principal (X-Scopes is ignored and removed), scopes are required
  /// (require_scopes is then always true), and /ext/status and
  /// /ext/openapi.json need the scope ext:status.
  std::shared_ptr<const Authenticator> authenticator;
  /// Browser safety for every request under /ext, with or without
  /// authentication: a Host that is not loopback or allowed, and an Origin
  /// (on any method) that is not the request's own or allowed, get 403. Also read from ORDINAUT_ALLOWED_HOSTS and ORDINAUT_ALLOWED_ORIGINS
  /// (comma-separated), which add to these lists.
  OriginPolicy origin_policy;
  /// Token buckets per principal (per client address when there is none) and
  /// per extension; 429 rate_limit_exceeded beyond them. Off when the rate is 0.
  RateLimitOptions rate_limits;
};

/// Per-route counters as reported in /ext/status and to observability.
struct RouteMetrics {
  std::string method;  ///< as the route was added: "GET", "POST", "*", ...
  std::string route;  ///< template relative to the mount, e.g. "/items/{id}"
  std::uint64_t requests = 0;  ///< requests answered
  std::uint64_t errors = 0;  ///< responses with status >= 500
  std::uint64_t status_class[6] = {0, 0, 0, 0, 0, 0};  ///< index = status / 100
  double seconds_total = 0;  ///< time spent answering, summed
  /// Cumulative counts per latency bucket, upper bounds in latency_buckets().
  std::vector<std::uint64_t> buckets;
  /// The same split by status class (index = status / 100): seconds, and
  /// cumulative bucket counts (empty for a class with no response).
  double class_seconds[6] = {0, 0, 0, 0, 0, 0};
  std::vector<std::uint64_t> class_buckets[6];  ///< per status class, as `buckets`
};

/// A snapshot of one extension as reported by status().
struct ExtensionSnapshot {
  std::string id;                                     ///< the extension id
  ExtensionState state = ExtensionState::discovered;  ///< where it is in its lifecycle
  std::string source;  ///< "builtin", "path", "linked"
  std::string path;    ///< manifest file, or "" for linked-in
  std::string version;     ///< the manifest's (or info()'s, linked-in)
  double load_ms = 0;      ///< how long its last load took
  std::string last_error;  ///< the latest failure (load, setup, a handler), "" if none
  std::string error_phase;  ///< "load", "setup", "startup", "shutdown", "request", ...
  std::string state_reason;  ///< why it is disabled or stopped, "" otherwise
  std::vector<TaskStatus> tasks;  ///< background tasks of its current (or last) runtime
  std::uint64_t requests = 0;        ///< requests to its routes
  std::uint64_t errors = 0;          ///< of which answered with status >= 500
  std::vector<RouteMetrics> routes;  ///< per route
};

/// Upper bounds (seconds) of the request latency histogram buckets.
const std::vector<double>& latency_buckets();

/// The host: see the top of this header. Thread-safe: handle(), load(),
/// status() and the registries may be used from any number of threads.
class ExtensionHost {
 public:
  /// A host configured by `options`; nothing is discovered before start().
  explicit ExtensionHost(HostOptions options = {});
  ~ExtensionHost();  // calls shutdown()
  ExtensionHost(const ExtensionHost&) = delete;
  ExtensionHost& operator=(const ExtensionHost&) = delete;

  /// Adds a linked-in extension. `approved` overrides entry grants for it.
  /// REQUIRES: before start().
  void add_linked(std::string id, ExtensionFactory factory,
                  std::optional<CapabilitySet> approved = std::nullopt,
                  std::optional<bool> eager = std::nullopt);

  /// Reads the environment, discovers every source and loads eager extensions.
  /// Fails only for configuration errors (e.g. malformed ORDINAUT_EXT_ENTRY_GRANTS,
  /// code "invalid_configuration"); a broken extension is reported in status().
  Result<void> start();

  /// Takes every loaded extension down in reverse load order (on_shutdown(),
  /// tasks, subscriptions, tools, routes; see above); they end `stopped` and
  /// nothing loads afterwards. Each step waits at most the lifecycle timeout.
  /// Idempotent.
  void shutdown();

  /// Serves one request under /ext. Never throws.
  Response handle(Request& request);

  /// Loads extension `id` now (no-op when loaded). Error codes "not_found",
  /// "disabled", "load_failed", "stopped" with the reason.
  Result<void> load(std::string_view id);

  /// Takes extension `id` down (when loaded) and marks it `disabled`; its
  /// requests get 404 with the reason. Not persisted: the manifest is
  /// unchanged. No-op when already disabled. Errors: "not_found",
  /// "host_stopped" (after shutdown()).
  Result<void> disable(std::string_view id);
  /// Makes a disabled (or failed) extension available again, as after start():
  /// an eager one loads now (its load error is returned), a lazy one on its
  /// next use. No-op when active. Errors: "not_found", "host_stopped", load errors.
  Result<void> enable(std::string_view id);
  /// Re-reads the extension's manifest, takes it down and sets it up again with
  /// the manifest's grants, eagerness and `enabled` (a linked-in extension is
  /// made again by its factory with the same grants). A manifest that is
  /// unreadable, invalid or has another id changes nothing (codes
  /// "unreadable_manifest", "invalid_json", "invalid_manifest"); a valid one
  /// whose extension then fails to load leaves it in `error` ("load_failed").
  /// Modules are never unloaded: the code of a module file already loaded is
  /// not replaced (give a new build a new file name in `module`).
  Result<void> reload(std::string_view id);

  /// The GET /ext/status document.
  Json status() const;
  /// The same as typed values, one per discovered extension.
  std::vector<ExtensionSnapshot> snapshot() const;

  /// Tools of every extension (declared ones included) and the host's own.
  ToolRegistry& tools();
  /// Resources and templates of every extension (declared ones included) and
  /// the host's own (ordinaut://host/status).
  ResourceRegistry& resources();
  /// Prompts of every extension (declared ones included).
  PromptRegistry& prompts();
  /// The bus given in HostOptions, or the in-memory one the host made.
  std::shared_ptr<EventBus> event_bus() const;
  /// Publishes an event of the host itself: its source is "core", a name no
  /// extension can publish under. Errors as EventBus::publish().
  Result<std::string> publish(std::string_view topic, const JsonValue& payload);
  /// The host's own logger (records say extension "core").
  const Logger& logger() const;
  /// Whether scopes are required (fixed at start()).
  bool require_scopes() const;

  struct Impl;  // implementation detail

 private:
  friend struct detail::HostBenchAccess;
  std::unique_ptr<Impl> impl_;
};

/// Registers a linked-in extension for every host created later (used by
/// ORDINAUT_REGISTER_EXTENSION). Thread-safe.
void register_linked_extension(std::string id, ExtensionFactory factory);

/// A static object whose constructor calls register_linked_extension()
/// (what ORDINAUT_REGISTER_EXTENSION defines).
struct LinkedExtensionRegistration {
  /// Registers `factory` under `id`.
  LinkedExtensionRegistration(const char* id, ExtensionFactory factory) {
    register_linked_extension(id, std::move(factory));
  }
};

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut

/// @cond INTERNAL
#define ORDINAUT_CONCAT2_(a, b) a##b
#define ORDINAUT_CONCAT_(a, b) ORDINAUT_CONCAT2_(a, b)
/// @endcond

/// Registers ExtensionClass, linked into this program, under `id` (a string
/// literal that must equal its info().id). Its approved grants come from
/// ORDINAUT_EXT_ENTRY_GRANTS, its eagerness from ORDINAUT_EXT_ENTRY_EAGER.
#define ORDINAUT_REGISTER_EXTENSION(id, ExtensionClass)                                      \
  static const ::ordinaut::LinkedExtensionRegistration ORDINAUT_CONCAT_(                    \
      ordinaut_linked_registration_, __COUNTER__){                                          \
      id, [] { return std::unique_ptr<::ordinaut::Extension>(new ExtensionClass()); }}
