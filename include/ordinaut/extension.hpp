// The extension contract: what an extension implements and what it receives.
//
// An extension is a class derived from `Extension`. The host constructs it
// through a factory (the module's `ordinaut_get_extension`, made by
// ORDINAUT_EXTENSION, or a linked-in registration), checks that info() matches
// the manifest, computes granted = requested ∩ approved, then calls setup()
// with a SetupContext holding one handle per granted capability. The Router
// setup() returns is mounted under /ext/{id}/ when ROUTES was granted.
//
// Call order: setup() → on_startup() → (requests, tools, events) →
// on_shutdown(). An exception from any of them is caught by the host: the
// extension enters the `error` state with the reason, other extensions go on.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "ordinaut/background.hpp"
#include "ordinaut/capability.hpp"
#include "ordinaut/events.hpp"
#include "ordinaut/http.hpp"
#include "ordinaut/json.hpp"
#include "ordinaut/logging.hpp"
#include "ordinaut/metrics.hpp"
#include "ordinaut/prompts.hpp"
#include "ordinaut/resources.hpp"
#include "ordinaut/tools.hpp"
#include "ordinaut/version.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

class HostIntrospection;  // ordinaut/introspection.hpp

/// What an extension says about itself (Extension::info()).
struct ExtensionInfo {
  std::string id;           ///< [a-z][a-z0-9_]{0,63}; must equal the manifest's
  std::string name;         ///< for people: "Shop"
  std::string version;      ///< semantic version; must equal the manifest's
  std::string description;  ///< one or two sentences, shown in /ext/status
};

/// What setup() receives. Handles of capabilities that were not granted are
/// never handed out: asking for one throws CapabilityError naming the missing
/// capability, and the host writes an audit record.
///
/// The context and every handle it returns stay valid until the extension's
/// on_shutdown() has returned, so an extension may keep references to them.
class SetupContext {
 public:
  virtual ~SetupContext() = default;

  /// The extension's id, as in its manifest.
  virtual const std::string& extension_id() const = 0;
  /// "/ext/{id}" — where the router is mounted.
  virtual const std::string& mount_path() const = 0;
  /// Granted capabilities: requested ∩ approved.
  virtual CapabilitySet grants() const = 0;
  /// True when `c` was granted: check it before asking for an optional handle.
  bool granted(Capability c) const { return grants().contains(c); }

  /// Read-only view of every tool: always available.
  virtual const ToolView& tools() const = 0;
  /// Registration handle for ext.{id}.* tools. REQUIRES: TOOLS.
  virtual ToolRegistrar& tool_registrar() = 0;
  /// Read-only view of every resource and template (with subscriptions):
  /// always available.
  virtual const ResourceView& resources() const = 0;
  /// Registration handle for this extension's resources (URIs under
  /// "ext://{id}/" or a scheme its manifest claims). REQUIRES: RESOURCES.
  virtual ResourceRegistrar& resource_registrar() = 0;
  /// Read-only view of every prompt: always available.
  virtual const PromptView& prompts() const = 0;
  /// Registration handle for ext.{id}.* prompts. REQUIRES: PROMPTS.
  virtual PromptRegistrar& prompt_registrar() = 0;
  /// REQUIRES: EVENTS_PUB.
  virtual const EventPublisher& events_publisher() = 0;
  /// REQUIRES: EVENTS_SUB.
  virtual const EventSubscriber& events_subscriber() = 0;
  /// REQUIRES: BACKGROUND_TASKS.
  virtual BackgroundTasks& background() = 0;
  /// The extension's `static/` folder. REQUIRES: STATIC. The host serves it
  /// under the mount by itself; this is for extensions that want the path.
  virtual const std::filesystem::path& static_dir() = 0;

  /// The folder holding extension.json; empty for linked-in extensions.
  virtual const std::filesystem::path& extension_dir() const = 0;
  /// Logger bound to this extension.
  virtual const Logger& logger() const = 0;
  /// The host's status document (same as GET /ext/status), for dashboards.
  virtual Json host_status() const = 0;
  /// Business metrics of this extension: every name is registered as
  /// "ext_{id}_{name}" and exported by observability. Always available.
  virtual MetricsRegistry& metrics() = 0;
  /// Read-only counters of the whole host (extensions, routes, tools, event
  /// bus, tasks, metrics), for observability. Always available, like
  /// host_status(). Include ordinaut/introspection.hpp to use it.
  virtual const HostIntrospection& introspection() const = 0;
};

/// The class an extension derives from; its module exports it with
/// ORDINAUT_EXTENSION(Class). Call order: info() and
/// requested_capabilities(), setup(), on_startup(), then requests, tool calls
/// and events (concurrently, from many threads), then on_shutdown().
class Extension {
 public:
  virtual ~Extension() = default;

  /// Id, name, version, description; id and version must equal the manifest's.
  virtual ExtensionInfo info() const = 0;
  /// What it asks for; it gets the part the operator approved (grants()).
  virtual CapabilitySet requested_capabilities() const = 0;
  /// Builds the extension: registers tools, subscribes, starts tasks, and
  /// returns the routes to mount (or nullopt for none).
  virtual std::optional<Router> setup(SetupContext& context) = 0;
  /// Called once after setup() succeeded, on a thread of its own; the host
  /// waits HostOptions::lifecycle_timeout at most, then marks the extension
  /// `error` (phase "startup") and abandons the call.
  virtual void on_startup() {}
  /// Called once when the extension is taken down (shutdown, disable, reload),
  /// before its tasks are stopped; must return promptly (same timeout).
  virtual void on_shutdown() {}
  /// Extra health checks, a JSON object name → {"status": "ok"|..., ...}. Any
  /// status other than "ok" makes the extension's health "degraded".
  virtual Json health_checks() const { return json::object(); }
};

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut

/// Exported symbol naming the module's ABI version (see ORDINAUT_EXTENSION).
#define ORDINAUT_ENTRY_ABI_SYMBOL "ordinaut_extension_abi_version"
#define ORDINAUT_ENTRY_STDLIB_SYMBOL "ordinaut_extension_stdlib"  ///< exported symbol: the module's C++ runtime
#define ORDINAUT_ENTRY_FACTORY_SYMBOL "ordinaut_get_extension"    ///< exported symbol: the module's factory

/// The ELF note that tells the host, before it loads a module, which ABI
/// version and C++ runtime the module was built with: section
/// ".note.ordinaut" (type SHT_NOTE), note name "Ordinaut", note type 1, and a
/// descriptor of AbiNote::abi_version then AbiNote::runtime. The host reads
/// it from the file at discovery, without dlopen (docs/design.md, "The ABI
/// note"). Its layout is fixed for every ABI version.
#define ORDINAUT_ABI_NOTE_SECTION ".note.ordinaut"
#define ORDINAUT_ABI_NOTE_NAME "Ordinaut"     ///< the note's name (owner)
#define ORDINAUT_ABI_NOTE_TYPE 1u             ///< the note's type
#define ORDINAUT_ABI_NOTE_RUNTIME_BYTES 64    ///< size of AbiNote::runtime

namespace ordinaut {

/// One ELF note as a module carries it (ORDINAUT_ABI_NOTE): the note header,
/// the name padded to 4 bytes, then the descriptor.
struct AbiNote {
  std::uint32_t name_size;    ///< sizeof "Ordinaut" (with its NUL): 9
  std::uint32_t desc_size;    ///< 4 + ORDINAUT_ABI_NOTE_RUNTIME_BYTES
  std::uint32_t type;         ///< ORDINAUT_ABI_NOTE_TYPE
  char name[12];              ///< ORDINAUT_ABI_NOTE_NAME, NUL-padded
  std::uint32_t abi_version;  ///< ORDINAUT_ABI_VERSION of the module's build
  char runtime[ORDINAUT_ABI_NOTE_RUNTIME_BYTES];  ///< ORDINAUT_STDLIB_ID, NUL-terminated
};
static_assert(sizeof(AbiNote) == 12 + 12 + 4 + ORDINAUT_ABI_NOTE_RUNTIME_BYTES, "AbiNote has no padding");
static_assert(sizeof(ORDINAUT_STDLIB_ID) <= ORDINAUT_ABI_NOTE_RUNTIME_BYTES, "the runtime tag fits the ABI note");

}  // namespace ordinaut

/// @cond INTERNAL
#if defined(__has_attribute)
#if __has_attribute(retain)
#define ORDINAUT_DETAIL_RETAIN_ __attribute__((retain))  // kept by ld --gc-sections too
#endif
#endif
#ifndef ORDINAUT_DETAIL_RETAIN_
#define ORDINAUT_DETAIL_RETAIN_
#endif
/// @endcond

/// Emits the module's ABI note (see ORDINAUT_ABI_NOTE_SECTION).
/// ORDINAUT_EXTENSION does this; use it directly only in a module that writes
/// its entry points by hand, once per module:
/// `ORDINAUT_ABI_NOTE(ORDINAUT_ABI_VERSION, ORDINAUT_STDLIB_ID)`.
#define ORDINAUT_ABI_NOTE(abi_version_value, runtime_id)                                    \
  __attribute__((section(ORDINAUT_ABI_NOTE_SECTION), used, aligned(4))) ORDINAUT_DETAIL_RETAIN_ \
  static const ::ordinaut::AbiNote ordinaut_detail_abi_note_ = {                          \
      sizeof(ORDINAUT_ABI_NOTE_NAME), 4 + ORDINAUT_ABI_NOTE_RUNTIME_BYTES, ORDINAUT_ABI_NOTE_TYPE, \
      ORDINAUT_ABI_NOTE_NAME, (abi_version_value), runtime_id};

/// Put once at the end of a module's source file: exports the factory
/// (`ordinaut_get_extension`, the C++ form of get_extension()) and the ABI
/// version and C++ runtime the module was built with, both as functions and
/// as the ELF note the host reads before loading the module.
#define ORDINAUT_EXTENSION(ExtensionClass)                                                   \
  ORDINAUT_ABI_NOTE(ORDINAUT_ABI_VERSION, ORDINAUT_STDLIB_ID)                                \
  extern "C" __attribute__((visibility("default"))) std::uint32_t                          \
  ordinaut_extension_abi_version() noexcept {                                               \
    return ORDINAUT_ABI_VERSION;                                                            \
  }                                                                                         \
  extern "C" __attribute__((visibility("default"))) const char*                            \
  ordinaut_extension_stdlib() noexcept {                                                    \
    return ORDINAUT_STDLIB_ID;                                                              \
  }                                                                                         \
  extern "C" __attribute__((visibility("default"))) ::ordinaut::Extension*                 \
  ordinaut_get_extension() {                                                                \
    return new ExtensionClass();                                                            \
  }
