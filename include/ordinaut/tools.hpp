// The tool registry: named, schema-checked functions that extensions offer and
// anyone may list and call (MCP, REST, other extensions, the host).
//
// Naming: an extension's tools live in its namespace, "ext.{id}.{name}"; the
// host registers its own under any name that does not start with "ext.". Names
// use [A-Za-z0-9_.-], at most 128 characters.
//
// Every call validates its input against the tool's input schema (the error
// names the JSON pointer) and, when the tool declares an output schema, its
// output. An exception thrown by a tool is caught and returned as an error.
//
// Thread safety: ToolRegistry is safe for concurrent use; calls run outside
// the registry's lock, so a tool may call other tools.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "ordinaut/json.hpp"
#include "ordinaut/result.hpp"
#include "ordinaut/version.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

/// What a running tool may do besides computing its result. Callers that can
/// talk back to a client (the MCP server) implement it; the default does
/// nothing, so plain tools never need to care.
class ToolContext {
 public:
  virtual ~ToolContext() = default;
  /// Sends a log message for this call ("debug", "info", "warning", "error", ...).
  virtual void log(std::string_view level, std::string_view message) { (void)level; (void)message; }
  /// Reports progress for this call; `total` <= 0 means unknown.
  virtual void progress(double progress, double total, std::string_view message) {
    (void)progress; (void)total; (void)message;
  }
  /// Sends a request to the client (e.g. "sampling/createMessage",
  /// "elicitation/create") and waits for its result. Fails with code
  /// "unsupported" when the caller has no client to ask.
  virtual Result<Json> ask_client(std::string_view method, const JsonValue& params,
                                  std::chrono::milliseconds timeout) {
    (void)method; (void)params; (void)timeout;
    return make_error("unsupported", "this caller cannot send requests to a client");
  }
  /// True once the caller cancelled the call; long tools should check it.
  virtual bool cancelled() const { return false; }
  /// Asks the caller to end the connection that waits for this call's result
  /// now, before the result exists (MCP "SSE polling", SEP-1699): the call
  /// keeps running, the client reconnects (after the priming event's `retry`)
  /// and receives what the call sent since, its result included. For long
  /// calls that should not hold a connection open. True when the caller did
  /// so; false, changing nothing, when it cannot: not over MCP, a client older
  /// than protocol 2025-11-25, resumption turned off, or the call is answered.
  virtual bool close_stream() { return false; }
};

/// A tool's implementation: takes the validated input, returns the output.
/// Throw ToolError for a structured failure; any other exception becomes
/// "tool_failed" with its what().
using ToolFunction = std::function<Json(const JsonValue& input, ToolContext& context)>;

/// A tool's structured failure: a stable `code`, a message naming what is
/// wrong, and optional details (JSON object text). The registry returns it as
/// an Error with the same code and details. Codes with an HTTP meaning map to
/// that status over REST: "bad_request" 400, "forbidden" 403, "not_found" 404,
/// "conflict" 409, "rate_limit_exceeded" 429, "unavailable" 503; other codes
/// answer 500 "tool_failed" with details.code. A CapabilityError escaping a
/// tool becomes code "forbidden" with details.missing_capability.
class ToolError : public std::runtime_error {
 public:
  /// `code` snake_case, `message` for the caller, `details_json` a JSON object text or empty.
  ToolError(std::string code, const std::string& message, std::string details_json = {})
      : std::runtime_error(message), code_(std::move(code)), details_(std::move(details_json)) {}
  /// The error code.
  const std::string& code() const noexcept { return code_; }
  /// JSON object text, or empty.
  const std::string& details() const noexcept { return details_; }

 private:
  std::string code_;
  std::string details_;
};

/// Designated initializers work without warnings: {.name = ..., .function = ...}.
struct ToolSpec {
  std::string name{};  ///< "ext.{id}.{name}" for an extension; [A-Za-z0-9_.-], at most 128 characters
  std::string title{};        ///< optional display name
  std::string description{};  ///< required: what it does, for people and models
  std::string input_schema = R"({"type":"object"})";  ///< JSON Schema text
  std::string output_schema{};                        ///< JSON Schema text, or empty
  ToolFunction function{};                            ///< required: the implementation
  /// MCP tool annotations as JSON object text (readOnlyHint, destructiveHint,
  /// idempotentHint, openWorldHint, title), or empty.
  std::string annotations{};
};

/// A registered tool as listed.
struct ToolInfo {
  std::string name;         ///< the full name
  std::string title;        ///< as registered
  std::string description;  ///< as registered
  std::string owner;  ///< extension id, or "core"
  std::shared_ptr<const Json> input_schema;   ///< parsed input schema
  std::shared_ptr<const Json> output_schema;  ///< null when none was declared
  std::shared_ptr<const Json> annotations;    ///< null when none were given
  /// True for a tool a manifest declares whose extension is not loaded yet:
  /// calling it loads the extension (see ToolRegistry::declare).
  bool declared = false;
};

/// Per-tool counters, read by observability.
struct ToolStats {
  std::string name;            ///< the tool
  std::string owner;           ///< its extension, or "core"
  std::uint64_t calls = 0;     ///< calls so far
  std::uint64_t errors = 0;    ///< of which failed
  double seconds_total = 0;    ///< time spent in calls, summed
};

/// Every tool of the host, by name: registration, listing, calls with schema
/// checks. Thread-safe.
class ToolRegistry {
 public:
  ToolRegistry();
  ~ToolRegistry();
  ToolRegistry(const ToolRegistry&) = delete;
  ToolRegistry& operator=(const ToolRegistry&) = delete;

  /// Registers a tool owned by `owner` ("core" or an extension id). Fails with
  /// "invalid_tool" (bad name, missing description or function, bad schema),
  /// "tool_namespace" (an "ext." name outside ext.{owner}.), "duplicate_tool"
  /// or "registry_frozen".
  Result<void> add(ToolSpec spec, std::string_view owner = "core");
  /// Lists a tool that the manifest of extension `owner` declares, before its
  /// module is loaded: same checks as add() except that `function` is
  /// ignored. call() and get() of a declared tool call the resolver first (the
  /// host loads the extension, which registers the real tool with add(),
  /// replacing the declaration); a tool still only declared then fails with
  /// "extension_unavailable". Works on a frozen registry (the host declares
  /// at discovery).
  Result<void> declare(ToolSpec spec, std::string_view owner);
  /// Removes the tools `owner` registered with add(), keeping its
  /// declarations; returns how many went. Works on a frozen registry.
  std::size_t remove_registered(std::string_view owner);
  /// Removes one tool; false when it did not exist.
  bool remove(std::string_view name);
  /// Removes every tool and declaration of `owner`; returns how many. Works on a frozen
  /// registry too: the host calls it when it stops an extension, whose tools
  /// must not stay callable once its code is shut down.
  std::size_t remove_owner(std::string_view owner);
  /// For the host that loads `owner`'s code: every tool `owner` adds from now
  /// on keeps `lease` alive while it is registered and while a call of it
  /// runs, so the code behind it is not freed under a call; a null lease stops
  /// that for tools added later. Tools already registered keep theirs.
  void hold_for_owner(std::string_view owner, std::shared_ptr<const void> lease);

  /// Every tool (declared ones included), sorted by name.
  std::vector<ToolInfo> list() const;
  /// One tool as listed; nullopt when there is none by that name (after the resolver ran).
  std::optional<ToolInfo> get(std::string_view name) const;

  /// Calls a tool. Errors: "tool_not_found", "invalid_input" (pointer set),
  /// "invalid_output", "tool_failed", or a ToolError's own code.
  Result<Json> call(std::string_view name, const JsonValue& input, ToolContext* context = nullptr) const;

  /// After freeze() add() fails with "registry_frozen" and remove() returns
  /// false; remove_owner() still works (see there).
  void freeze() noexcept;
  /// True after freeze().
  bool frozen() const noexcept;

  /// Called (outside any lock) with a tool name that is not registered, before
  /// call()/get() give up, so a host can load the extension owning it lazily.
  void set_resolver(std::function<void(std::string_view name)> resolver);

  /// Incremented on every add or remove.
  std::uint64_t generation() const noexcept;
  /// Registers a listener called after every add or remove (on the thread that
  /// changed the registry, outside its lock; keep it short); returns its id.
  /// Const: observing changes does not modify the registry.
  std::uint64_t on_change(std::function<void()> listener) const;
  /// Removes a listener of on_change().
  void remove_listener(std::uint64_t id) const;

  /// Per-tool counters (for observability).
  std::vector<ToolStats> stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Read-only access to a registry: what every extension gets.
class ToolView {
 public:
  /// A view of `registry`, which must outlive it.
  explicit ToolView(const ToolRegistry& registry) : registry_(&registry) {}
  /// @copydoc ToolRegistry::list
  std::vector<ToolInfo> list() const { return registry_->list(); }
  /// @copydoc ToolRegistry::get
  std::optional<ToolInfo> get(std::string_view name) const { return registry_->get(name); }
  /// @copydoc ToolRegistry::call
  Result<Json> call(std::string_view name, const JsonValue& input, ToolContext* context = nullptr) const {
    return registry_->call(name, input, context);
  }
  /// Changes whenever a tool is added or removed (e.g. a lazy extension loads).
  std::uint64_t generation() const noexcept { return registry_->generation(); }
  /// See ToolRegistry::on_change; remove the listener before it dangles.
  std::uint64_t on_change(std::function<void()> listener) const { return registry_->on_change(std::move(listener)); }
  /// @copydoc ToolRegistry::remove_listener
  void remove_listener(std::uint64_t id) const { registry_->remove_listener(id); }

 private:
  const ToolRegistry* registry_;
};

/// Registration handle for one extension (given only with TOOLS). Names must be
/// "ext.{id}.{name}".
class ToolRegistrar {
 public:
  /// Registers into `registry` as `extension_id` (the host makes one per extension).
  ToolRegistrar(ToolRegistry& registry, std::string extension_id)
      : registry_(&registry), extension_id_(std::move(extension_id)) {}

  /// Registers a tool; throws std::invalid_argument with the registry's message
  /// on failure (setup then fails with that reason).
  void add(ToolSpec spec);
  /// Result-returning variant of add().
  Result<void> try_add(ToolSpec spec) { return registry_->add(std::move(spec), extension_id_); }
  /// "ext.{id}." — the prefix every tool of this extension carries.
  std::string prefix() const { return "ext." + extension_id_ + "."; }

 private:
  ToolRegistry* registry_;
  std::string extension_id_;
};

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
